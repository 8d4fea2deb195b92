// Customizing a root filesystem tar without unpacking it: untouched entries (with their pax records, such
// as a file capability) copied byte for byte, users and groups, files with their modes and owners placed
// like kbimg places them, units enabled, os-release quoting, and errors that name the spec's field.
import { execFileSync } from "node:child_process";
import { chmod, mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addUsers, setRootPassword } from "../src/build/accounts.ts";
import {
  customizeRootfs,
  installSection,
  type RootfsEdits,
  RootfsError,
  setOsReleaseKeys,
} from "../src/build/rootfs.ts";
import { BLOCK, encodeHeader, indexTar, readEntry } from "../src/build/tar.ts";
import { tempDir, writeSyntheticRootfs } from "./support/build.ts";

let dir: string;
let base: string;

const edits = (extra: Partial<RootfsEdits> = {}): RootfsEdits => ({
  epoch: 1_735_689_600,
  users: [],
  copies: [],
  files: [],
  dirs: [],
  enableUnits: [],
  remove: [],
  ...extra,
});

/** A pax record as GNU tar writes xattrs: binary values. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

beforeAll(async () => {
  dir = await tempDir("osimg-rootfs-");
  base = join(dir, "base.tar");
  await writeSyntheticRootfs(base);
  // Append an entry with a binary xattr (security.capability) before the end-of-archive blocks.
  const entries = await indexTar(base);
  const end = (entries.at(-1) as { end: number }).end;
  const capability = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0x0a]);
  const pax = paxRecord("SCHILY.xattr.security.capability", capability);
  const paxHeader = encodeHeader({
    path: "PaxHeaders/ping",
    rawPath: "././@PaxHeader",
    type: "file",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: pax.length,
    mtime: 0,
    linkname: "",
  });
  paxHeader.write("x", 156, 1, "ascii");
  // Fix the header's checksum after changing its type flag.
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (paxHeader[i] as number);
  paxHeader.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  const data = Buffer.from("#!/bin/sh\necho ping\n");
  const main = encodeHeader({
    path: "usr/bin/ping",
    type: "file",
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: 1,
    linkname: "",
  });
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((BLOCK - (b.length % BLOCK)) % BLOCK)]);
  const handle = await open(base, "r+");
  await handle.write(
    Buffer.concat([paxHeader, pad(pax), main, pad(data), Buffer.alloc(BLOCK * 2)]),
    0,
    undefined,
    end,
  );
  await handle.close();
  await mkdir(join(dir, "spec", "conf"), { recursive: true });
  await writeFile(join(dir, "spec", "conf", "app.conf"), "a=1\n", { mode: 0o640 });
  // A private directory on the host: merged into /etc, it must not make /etc private.
  await chmod(join(dir, "spec", "conf"), 0o700);
  await writeFile(join(dir, "spec", "resolv.conf"), "nameserver 192.0.2.1\n");
  await writeFile(join(dir, "spec", "unit.service"), "[Service]\nExecStart=/bin/true\n");
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function customized(extra: Partial<RootfsEdits>) {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}.tar`);
  await customizeRootfs(base, out, edits(extra));
  const entries = new Map((await indexTar(out)).map((e) => [e.path, e]));
  return {
    out,
    entries,
    text: async (p: string) => (await readEntry(out, entries.get(p) as never)).toString(),
  };
}

describe("root filesystem customization", () => {
  it("copies untouched entries byte for byte, pax records (a binary file capability) included", async () => {
    const { out, entries } = await customized({
      files: [{ path: "/etc/hostname", content: "x\n", mode: 0o644 }],
    });
    const before = (await indexTar(base)).find((e) => e.path === "usr/bin/ping");
    const after = entries.get("usr/bin/ping");
    if (!before || !after) throw new Error("ping missing");
    const bytes = async (file: string, e: typeof before) => {
      const h = await open(file, "r");
      const b = Buffer.alloc(e.end - e.start);
      await h.read(b, 0, b.length, e.start);
      await h.close();
      return b;
    };
    expect(await bytes(out, after)).toEqual(await bytes(base, before));
    expect(
      (await bytes(out, after)).includes(
        Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0x0a]),
      ),
    ).toBe(true);
  });

  it("places files as kbimg does, with modes and owners; merging into a directory keeps its own mode", async () => {
    const { entries, text } = await customized({
      users: [{ field: "users[0]", name: "app", groups: [], sshAuthorizedKeys: [] }],
      copies: [
        { field: "copy_files[0]", src: "resolv.conf", root: join(dir, "spec"), dst: "/etc" },
        { field: "copy_files[1]", src: "conf", root: join(dir, "spec"), dst: "/etc" },
        {
          field: "copy_files[2]",
          src: "conf/app.conf",
          root: join(dir, "spec"),
          dst: "/opt/app/",
          owner: "app",
        },
        {
          field: "copy_files[3]",
          src: "unit.service",
          root: join(dir, "spec"),
          dst: "/lib/systemd/system/x.service",
          mode: 0o600,
        },
      ],
    });
    expect(await text("etc/resolv.conf")).toBe("nameserver 192.0.2.1\n");
    expect(entries.get("etc/app.conf")).toMatchObject({ mode: 0o640, uid: 0 });
    expect(entries.get("etc")).toMatchObject({ mode: 0o755 });
    expect(entries.get("opt/app/app.conf")).toMatchObject({ mode: 0o640, uid: 1000, gid: 1000 });
    expect(entries.get("opt/app")).toMatchObject({ type: "dir", uid: 0 });
    // /lib is a symlink to usr/lib in the image: the file lands where it points.
    expect(entries.get("usr/lib/systemd/system/x.service")).toMatchObject({ mode: 0o600 });
    expect(entries.has("lib/systemd/system/x.service")).toBe(false);
  });

  it("enables units through their [Install] section; a unit without one, or missing, names the field", async () => {
    const { entries } = await customized({
      enableUnits: [{ unit: "demo", field: "systemd_service.name[0]" }],
    });
    expect(entries.get("etc/systemd/system/multi-user.target.wants/demo.service")).toMatchObject({
      type: "symlink",
    });
    const missing = await customizeRootfs(
      base,
      join(dir, "x.tar"),
      edits({ enableUnits: [{ unit: "nope", field: "systemd_service.name[0]" }] }),
    ).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(RootfsError);
    expect(missing).toMatchObject({
      field: "systemd_service.name[0]",
      message: "systemd unit nope.service is not in the image",
    });
    const noInstall = await customizeRootfs(
      base,
      join(dir, "x.tar"),
      edits({
        copies: [
          {
            field: "copy_files[0]",
            src: "unit.service",
            root: join(dir, "spec"),
            dst: "/etc/systemd/system/",
          },
        ],
        enableUnits: [{ unit: "unit", field: "systemd_service.name[0]" }],
      }),
    ).catch((e: unknown) => e);
    expect((noInstall as Error).message).toContain("has no [Install] section");
    expect(installSection("[Install]\nWantedBy=a.target b.target\nAlias=x.service\n")).toEqual({
      WantedBy: ["a.target", "b.target"],
      Alias: ["x.service"],
    });
  });

  it("removes device nodes and the like by pattern, keeping the directory", async () => {
    const { entries } = await customized({ remove: ["/dev/*", "/etc/ssh/ssh_host_ed25519_key"] });
    expect(entries.has("dev")).toBe(true);
    expect(entries.has("dev/pts")).toBe(false);
    expect(entries.has("etc/ssh/ssh_host_ed25519_key")).toBe(false);
  });
});

describe("accounts and os-release", () => {
  const files = {
    passwd: "root:x:0:0:root:/root:/bin/sh\n",
    group: "root:x:0:\nsudo:x:27:\n",
    shadow: "root:*:1:0:99999:7:::\n",
    gshadow: "root:*::\nsudo:*::\n",
  };

  it("adds users with their groups; a missing group names the field", () => {
    const { files: after, created } = addUsers(
      files,
      [
        { name: "a", groups: ["sudo"], shell: "/bin/sh", field: "users[0]" },
        { name: "b", primaryGroup: "a", groups: ["a"], passwd: "!", shell: "/bin/sh", field: "users[1]" },
      ],
      86400 * 3,
    );
    expect(created).toEqual([
      { name: "a", uid: 1000, gid: 1000, home: "/home/a" },
      { name: "b", uid: 1001, gid: 1000, home: "/home/b" },
    ]);
    expect(after.group).toBe("root:x:0:\nsudo:x:27:a\na:x:1000:b\n");
    expect(after.shadow).toContain("a:!:3:0:99999:7:::");
    expect(after.gshadow).toContain("sudo:*::a");
    expect(() =>
      addUsers(files, [{ name: "c", groups: ["wheel"], shell: "/bin/sh", field: "users[0]" }], 0),
    ).toThrow(expect.objectContaining({ field: "users[0].groups[0]" }));
    expect(() =>
      addUsers(files, [{ name: "root", groups: [], shell: "/bin/sh", field: "users[0]" }], 0),
    ).toThrow(/already exists/);
    expect(setRootPassword(files, "$6$x$y", 86400).shadow).toBe("root:$6$x$y:1:0:99999:7:::\n");
  });

  it("quotes os-release values so that sourcing the file runs nothing", async () => {
    const text = setOsReleaseKeys('ID=debian\nVERSION="12"\n', {
      IMAGE_VERSION: 'a"b $(x) `y` \\z',
      VERSION: "13",
    });
    expect(text).toBe('ID=debian\nVERSION="13"\nIMAGE_VERSION="a\\"b \\$(x) \\`y\\` \\\\z"\n');
    const file = join(dir, "os-release");
    await writeFile(file, text);
    expect(execFileSync("sh", ["-c", '. "$1"; printf %s "$IMAGE_VERSION"', "sh", file]).toString()).toBe(
      'a"b $(x) `y` \\z',
    );
    expect(await readFile(file, "utf8")).toBe(text);
  });
});
