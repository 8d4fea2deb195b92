import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { catalogYaml, configMapYaml, UBUNTU } from "./support/catalogs.ts";
import { tempDir } from "./support/server.ts";

const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;

function osimg(args: string[], node = process.execPath, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(node, [BIN, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function file(name: string, text: string): string {
  const path = join(tempDir(), name);
  writeFileSync(path, text);
  return path;
}

/** The machine's own Node (older than 24 on these machines): the one npm runs with. */
function systemNode(): string {
  return process.env.npm_node_execpath ?? "/usr/bin/node";
}

describe("osimg catalog lint", () => {
  it("prints path:line:col: severity: message with the hint, exit 1 on an error", () => {
    const path = file("images.yaml", catalogYaml([{ ...UBUNTU, MIN_MEMORY: "8 GB" }]));
    const { code, stdout } = osimg(["catalog", "lint", path]);
    expect(code).toBe(1);
    expect(stdout).toContain(
      `${path}:5:17: error: MIN_MEMORY: "8 GB" has an unknown unit " GB" [images[0].MIN_MEMORY]`,
    );
    expect(stdout).toContain('hint: write "8G" (10^n bytes) or "8Gi" (2^n bytes)');
  });

  it("exits 0 on warnings only, and lints several files", () => {
    const good = file("a.yaml", catalogYaml([UBUNTU]));
    const warned = file(
      "b.yaml",
      configMapYaml(catalogYaml([{ ...UBUNTU, OS_IMAGE_URL: "http://mirror.local/u.img" }])),
    );
    const { code, stdout, stderr } = osimg(["catalog", "lint", good, warned]);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^${warned}:\\d+:\\d+: warning: OS_IMAGE_URL uses plain http`, "m"));
    expect(stderr).toContain(`${good}: 1 entries, 0 errors, 0 warnings`);
  });

  it("reports findings as JSON", () => {
    const path = file("images.yaml", catalogYaml([{ ...UBUNTU, FIRMWARE_TYPE: "uefi" }]));
    const { code, stdout } = osimg(["catalog", "lint", "--json", path]);
    expect(code).toBe(1);
    const report = JSON.parse(stdout) as {
      file: string;
      findings: { code: string; line: number; column: number }[];
    }[];
    expect(report[0]?.file).toBe(path);
    expect(report[0]?.findings[0]).toMatchObject({ code: "firmware.invalid", line: 8, column: 20 });
  });

  it("a missing file is an error finding, not a crash", () => {
    const { code, stdout } = osimg(["catalog", "lint", "/nonexistent/images.yaml"]);
    expect(code).toBe(1);
    expect(stdout).toContain(
      "/nonexistent/images.yaml:1:1: error: cannot read /nonexistent/images.yaml: no such file",
    );
  });
});

describe("osimg catalog show", () => {
  it("prints a table with sizes as written", () => {
    const { code, stdout } = osimg(["catalog", "show", file("images.yaml", catalogYaml([UBUNTU]))]);
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^NAME\s+USER\s+VCPU\s+MEMORY\s+STORAGE\s+FIRMWARE\s+MACHINE\s+FEATURES\s+STATUS$/m,
    );
    expect(stdout).toMatch(
      /^Ubuntu 24\.04\s+ubuntu\s+1\s+1G \(954 MiB\)\s+20G \(18\.6 GiB\)\s+bios\s+q35\s+acpi\s+ok$/m,
    );
  });
});

describe("the osimg launcher", () => {
  it("runs on an older Node by handing over to the Node 24 that npm installed", () => {
    expect(execFileSync(systemNode(), ["--version"], { encoding: "utf8" })).not.toMatch(/^v2[4-9]/);
    const { code, stdout } = osimg(["--version"], systemNode());
    expect(code).toBe(0);
    expect(stdout.trim()).toBe("0.1.0");
  });

  it("refuses an older Node with a clear message when it cannot hand over", () => {
    const { code, stderr } = osimg(["--version"], systemNode(), { OSIMG_NO_REEXEC: "1" });
    expect(code).toBe(1);
    expect(stderr).toContain("Node.js 24 or newer is required");
    expect(stderr).toContain("npm ci");
  });
});
