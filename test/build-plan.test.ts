// The plan: argv-only steps, the rootless and the root variants, what the cache key sees and what it
// does not, and the --debug scripts (bash -n and shellcheck clean, words that bash reads back as the argv).
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { baseKey, makePlan, type PlanInput, packageSet } from "../src/build/plan.ts";
import { renderScripts, shJoin, shQuote } from "../src/build/shell.ts";
import { BUILD_KINDS, type BuildSpec, parseSpec } from "../src/build/spec.ts";
import type { ExecStep } from "../src/build/steps.ts";

const EXAMPLE = new URL("../examples/debian-cloud/spec.toml", import.meta.url).pathname;
const spec = parseSpec(readFileSync(EXAMPLE, "utf8")).spec as BuildSpec;
const SUBIDS = { uid: { start: 100000, count: 65536 }, gid: { start: 100000, count: 65536 } };

function input(overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    spec,
    kind: "vm-img",
    specHash: "a".repeat(64),
    specDir: "/specs/demo",
    buildId: "b1",
    workDir: "/data/build/work/b1",
    scratchDir: "/dev/shm/osimg-build-b1",
    outDir: "/out",
    cacheDir: "/data/cache/build",
    epoch: 1735689600,
    compression: "none",
    mmdebstrapVersion: "mmdebstrap 1.3.5",
    ...overrides,
  };
}

const execs = (plan: ReturnType<typeof makePlan>) =>
  plan.steps.filter((s): s is ExecStep => s.kind === "exec");

describe("plan", () => {
  it("every program is an argv array; hooks handed to mmdebstrap are constants", () => {
    for (const kind of BUILD_KINDS) {
      const s =
        kind === "pxe-img"
          ? parseSpec(readFileSync(new URL("../examples/pxe/spec.toml", import.meta.url), "utf8")).spec
          : spec;
      const plan = makePlan(
        input({ kind, spec: s as BuildSpec, push: { reference: "127.0.0.1:5000/os/x:1", tlsVerify: false } }),
      );
      for (const step of execs(plan)) {
        expect(Array.isArray(step.argv) && step.argv.every((a) => typeof a === "string")).toBe(true);
        expect(step.argv[0]).not.toMatch(/^(sh|bash)$/);
        for (const hook of step.argv.filter((a) => /^--(setup|customize|essential|extract)-hook=/.test(a)))
          expect(hook).toMatch(
            /^--(setup|customize)-hook=(mkdir -p "\$1\/var\/cache\/apt\/archives\/"|sync-in \. \/var\/cache\/apt\/archives\/|sync-out \/var\/cache\/apt\/archives \.|tar-in customized\.tar \/|upload chroot-script \/osimg-chroot-script|\/.*\/src\/build\/chroot-hook\.sh)$/,
          );
      }
    }
  });

  it("as root: mmdebstrap --mode=root in a private mount and pid namespace; image files handled directly", () => {
    const plan = makePlan(input());
    const mm = execs(plan).find((s) => s.id === "bootstrap.mmdebstrap") as ExecStep;
    expect(mm.argv.slice(0, 10)).toEqual([
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--pid",
      "--fork",
      "--kill-child",
      "--",
      "mmdebstrap",
      "--mode=root",
    ]);
    expect(execs(plan).find((s) => s.id === "filesystem.unpack")?.argv[0]).toBe("tar");
  });

  it("without root: mmdebstrap --mode=unshare; unpacking and mkfs inside a user namespace of the subordinate ids", () => {
    const plan = makePlan(input({ rootless: SUBIDS }));
    const mm = execs(plan).find((s) => s.id === "bootstrap.mmdebstrap") as ExecStep;
    expect(mm.argv.slice(0, 2)).toEqual(["mmdebstrap", "--mode=unshare"]);
    const wrapped = [
      "unshare",
      "--map-root-user",
      "--map-users=100000,1,65536",
      "--map-groups=100000,1,65536",
      "--",
    ];
    for (const id of ["filesystem.unpack", "disk.mkfs-root", "disk.cleanup"])
      expect(
        execs(plan)
          .find((s) => s.id === id)
          ?.argv.slice(0, 5),
      ).toEqual(wrapped);
    expect(execs(plan).some((s) => s.argv.includes("--mount"))).toBe(false);
  });

  it("the bootstrap is cached by everything that determines it, and nothing else", () => {
    const key = baseKey(input());
    const changed = (s: Partial<BuildSpec["from_repo"]>) =>
      baseKey(input({ spec: { ...spec, from_repo: { ...spec.from_repo, ...s } } }));
    expect(changed({ packages: [...spec.from_repo.packages, "curl"] })).not.toBe(key);
    expect(changed({ suite: "trixie" })).not.toBe(key);
    expect(changed({ mirror: "http://mirror.example/debian" })).not.toBe(key);
    expect(baseKey(input({ keyringDigest: "b".repeat(64) }))).not.toBe(key);
    expect(baseKey(input({ epoch: 1 }))).not.toBe(key);
    expect(baseKey(input({ mmdebstrapVersion: "mmdebstrap 1.4.0" }))).not.toBe(key);
    // What the customize step applies does not reach the key: users, files, units, version, passwords.
    const edited = {
      ...spec,
      users: [],
      copy_files: [],
      systemd_service: undefined,
      from_repo: { ...spec.from_repo, version: "other", root_passwd: "*" },
    };
    expect(baseKey(input({ spec: edited, specHash: "c".repeat(64) }))).toBe(key);
    // vm-img, container-disk and upgrade-img share one root filesystem.
    expect(baseKey(input({ kind: "container-disk" }))).toBe(key);
    expect(baseKey(input({ kind: "upgrade-img" }))).toBe(key);
  });

  it("adds what the kind needs: a kernel and an init for disks, sshd for the admin container", () => {
    const bare = { ...spec, from_repo: { ...spec.from_repo, packages: ["curl"] } };
    expect(packageSet(bare, "vm-img")).toEqual(["curl", "linux-image-cloud-amd64", "systemd-sysv"]);
    expect(
      packageSet({ ...bare, from_repo: { ...bare.from_repo, distribution: "ubuntu" } }, "vm-img"),
    ).toContain("linux-image-virtual");
    expect(packageSet(bare, "admin-container")).toEqual(["curl", "openssh-server"]);
  });

  it("a disk layout from the spec: ESP, root of [disk_partition] root MiB, persist with img_size", () => {
    const plan = makePlan(input({ spec: { ...spec, disk_partition: { root: 3000, img_size: 10 } } }));
    const sfdisk = plan.steps.find((s) => s.id === "disk.write-partitions.sfdisk");
    const text = sfdisk?.kind === "native" && sfdisk.op.op === "write-file" ? sfdisk.op.content : "";
    expect(text).toContain(`size=${(3000 * 2 ** 20) / 512}, type=4F68BCE3`);
    expect(text).toContain('name="persist"');
    expect(text).toContain('attrs="LegacyBIOSBootable"');
    const noBios = makePlan(
      input({ spec: { ...spec, from_repo: { ...spec.from_repo, legacy_bios: false } } }),
    );
    expect(noBios.steps.some((s) => s.id === "disk.syslinux")).toBe(false);
  });

  it("the same spec gives the same identifiers (reproducible disks)", () => {
    expect(makePlan(input()).ids).toEqual(makePlan(input({ buildId: "b2" })).ids);
    expect(makePlan(input()).ids.rootPart).not.toBe(
      makePlan(input({ specHash: "d".repeat(64) })).ids.rootPart,
    );
  });
});

describe("--debug scripts", () => {
  it("quote every word so that bash reads back exactly the argv", () => {
    const words = [
      "plain",
      "",
      "a b",
      "it's",
      'say "hi"',
      "$(touch /tmp/x)",
      "`id`",
      "*",
      "a\nb",
      "--x=$1",
      "~root",
      "!",
      "#c",
      "tab\there",
    ];
    const out = execFileSync("bash", ["-c", `printf '%s\\0' ${shJoin(words)}`]);
    expect(out.toString().split("\0").slice(0, -1)).toEqual(words);
    expect(shQuote("/usr/bin/x")).toBe("/usr/bin/x");
  });

  it("are bash -n and shellcheck clean for every kind", () => {
    for (const kind of BUILD_KINDS) {
      const s =
        kind === "pxe-img"
          ? parseSpec(readFileSync(new URL("../examples/pxe/spec.toml", import.meta.url), "utf8")).spec
          : spec;
      const plan = makePlan(
        input({
          kind,
          spec: s as BuildSpec,
          rootless: SUBIDS,
          push: { reference: "127.0.0.1:5000/os/x:1", tlsVerify: false },
        }),
      );
      for (const [name, text] of renderScripts(plan.steps, "/out/plan.json", ["spec: x"])) {
        expect(spawnSync("bash", ["-n"], { input: text }).status, `${kind} ${name}`).toBe(0);
        const check = spawnSync("shellcheck", ["-s", "bash", "-"], { input: text, encoding: "utf8" });
        expect(check.stdout, `${kind} ${name}`).toBe("");
        expect(check.status).toBe(0);
      }
    }
  });
});
