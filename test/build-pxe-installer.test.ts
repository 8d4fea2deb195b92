// The PXE installer's boot script (src/build/pxe/osimg-install.sh) on its own, under busybox's sh (the
// initramfs's shell): the kernel command line and install.conf are read as data. Well-formed values are
// taken; anything else (other schemes, relative or climbing disk paths, shell syntax) is refused with a
// message naming the parameter, and nothing in a value ever runs (the canary file is never created). The
// whole installer runs end to end in test/build-pxe-debian.test.ts.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PXE_DIR } from "../src/build/pxe.ts";

const SCRIPT = join(PXE_DIR, "osimg-install.sh");
let dir: string;
let canary: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "osimg-pxe-installer-"));
  canary = join(dir, "CANARY");
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Sources the boot script in busybox sh (failures not copied to the kernel log) and runs `code`. */
function sh(code: string, ...args: string[]): { status: number | null; out: string } {
  const result = spawnSync(
    "busybox",
    ["sh", "-c", `. "$0"; osimg_kmsg=/dev/null; ${code}`, SCRIPT, ...args],
    { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", CANARY: canary } },
  );
  return { status: result.status, out: `${result.stdout}${result.stderr}` };
}

const parse = (cmdline: string) =>
  sh('osimg_parse_cmdline "$1" && printf "url=%s disk=%s\\n" "$osimg_url" "$osimg_disk"', cmdline);

describe("the installer's kernel command line", () => {
  it("takes osimg.rootfs= (http, with or without a port) and osimg.disk= among the other words", () => {
    expect(
      parse(
        "BOOT_IMAGE=x boot=osimg-install ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off net.ifnames=0 osimg.rootfs=http://10.0.2.2:8080/rootfs.tar osimg.disk=/dev/vda console=ttyS0,115200n8",
      ),
    ).toEqual({ status: 0, out: "url=http://10.0.2.2:8080/rootfs.tar disk=/dev/vda\n" });
    expect(parse("osimg.disk=/dev/disk/by-id/virtio-x_1 osimg.rootfs=http://192.0.2.1/a/b-c_1.tar").out).toBe(
      "url=http://192.0.2.1/a/b-c_1.tar disk=/dev/disk/by-id/virtio-x_1\n",
    );
  });

  it("refuses what is missing or malformed, naming the parameter", () => {
    const cases: [string, RegExp][] = [
      ["osimg.disk=/dev/vda", /no osimg\.rootfs= on the kernel command line/],
      ["osimg.rootfs=http://h/x.tar", /no osimg\.disk= on the kernel command line/],
      [
        "osimg.rootfs=https://h/x.tar osimg.disk=/dev/vda",
        /osimg\.rootfs=https:\/\/h\/x\.tar is not an http:\/\/ URL/,
      ],
      ["osimg.rootfs=ftp://h/x.tar osimg.disk=/dev/vda", /is not an http:\/\/ URL/],
      ["osimg.rootfs=http:///x.tar osimg.disk=/dev/vda", /names no server/],
      ["osimg.rootfs=http://h:80 osimg.disk=/dev/vda", /names no file on the server/],
      ["osimg.rootfs=http://h/ osimg.disk=/dev/vda", /names no file on the server/],
      ["osimg.rootfs=http://h/x.tar osimg.disk=vda", /osimg\.disk=vda is not a \/dev path/],
      ["osimg.rootfs=http://h/x.tar osimg.disk=/dev/", /is not a \/dev path/],
      ["osimg.rootfs=http://h/x.tar osimg.disk=/dev/../etc/passwd", /is not a plain \/dev path/],
      ["osimg.rootfs=http://h/x.tar osimg.disk=/dev/vda/..", /is not a plain \/dev path/],
    ];
    for (const [cmdline, message] of cases) {
      const { status, out } = parse(cmdline);
      expect(status, cmdline).toBe(1);
      expect(out, cmdline).toMatch(/^osimg-install: FAILED: /);
      expect(out, cmdline).toMatch(message);
    }
  });

  it("never runs a value: shell syntax in either parameter is refused as data", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell's ${IFS}: a space within one word
    const SP = "${IFS}";
    const payloads = [
      `$(touch${SP}$CANARY)`,
      `\`touch${SP}$CANARY\``,
      `;touch${SP}$CANARY`,
      `|touch${SP}$CANARY`,
      `&&touch${SP}$CANARY`,
      `'$(touch${SP}$CANARY)'`,
      `"$(touch${SP}$CANARY)"`,
      "*",
      "/dev/*",
    ];
    for (const payload of payloads) {
      for (const cmdline of [
        `osimg.rootfs=http://h/${payload} osimg.disk=/dev/vda`,
        `osimg.rootfs=http://h${payload}/x.tar osimg.disk=/dev/vda`,
        `osimg.rootfs=http://h/x.tar osimg.disk=/dev/vda${payload}`,
        `osimg.rootfs=http://h/x.tar osimg.disk=${payload}`,
      ]) {
        const { status, out } = parse(cmdline);
        expect(status, cmdline).toBe(1);
        expect(out, cmdline).toMatch(/^osimg-install: FAILED: osimg\.(rootfs|disk)=/);
        // The value is shown as it was written, not expanded.
        expect(out, cmdline).toContain(payload.startsWith("/dev") ? payload : payload.slice(0, 3));
      }
    }
    expect(existsSync(canary)).toBe(false);
  });
});

describe("the installer's install.conf", () => {
  const conf = async (text: string) => {
    const path = join(dir, "install.conf");
    await writeFile(path, text);
    return sh(
      'osimg_read_conf "$1" && printf "%s %s %s %s\\n" "$osimg_root_fsuuid" "$osimg_esp_volume_id" "$osimg_bios" "$osimg_syslinux_menu"',
      path,
    );
  };
  const GOOD =
    "# comment\nroot_fsuuid=0a1b2c3d-0000-4000-8000-00000000abcd\nesp_volume_id=8820b8f5\nbios=1\nsyslinux_menu=0\n";

  it("reads the identifiers the build wrote", async () => {
    expect(await conf(GOOD)).toEqual({
      status: 0,
      out: "0a1b2c3d-0000-4000-8000-00000000abcd 8820b8f5 1 0\n",
    });
  });

  it("refuses a file it cannot trust, never sourcing it", async () => {
    for (const [text, message] of [
      [GOOD.replace(/root_fsuuid=.*/, "root_fsuuid=$(touch $CANARY)"), /root_fsuuid is not a UUID/],
      [
        GOOD.replace(/root_fsuuid=.*/, "root_fsuuid=0a1b2c3d-0000-4000-8000-00000000abc;"),
        /lower-case hexadecimal/,
      ],
      [GOOD.replace(/esp_volume_id=.*/, "esp_volume_id=`touch $CANARY`"), /hexadecimal/],
      [GOOD.replace("bios=1", "bios=yes"), /bios and syslinux_menu must be 0 or 1/],
      [GOOD.replace("syslinux_menu=0", "syslinux_menu=1").replace("bios=1", "bios=0"), /must be 0 or 1/],
    ] as const) {
      const { status, out } = await conf(text);
      expect(status, text).toBe(1);
      expect(out, text).toMatch(message);
    }
    const missing = sh('osimg_read_conf "$1"', join(dir, "nothing.conf"));
    expect(missing.out).toMatch(/nothing\.conf is not in this initramfs/);
    expect(existsSync(canary)).toBe(false);
  });
});
