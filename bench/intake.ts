// Image intake benchmark: pull a 1 GiB qcow2 from a local HTTP server into the store (download, sha256 +
// sha512, write, verify against SHA256SUMS, inspect, publish) against `curl -s URL | sha256sum` of the
// same file in the same run (the ceiling: download and one hash, nothing written). Then the bytes the
// probe reads to classify the remote qcow2, against the whole file a full import reads.
//   npm run bench:intake [-- --size-mib 1024 --rounds 2]
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { probe } from "../src/images/probe.ts";
import { ImageStore } from "../src/images/store.ts";
import { formatBytes } from "../src/units/quantity.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const sizeMiB = arg("size-mib", 1024);
const rounds = arg("rounds", 2);

const work = join(tmpdir(), `osimg-bench-intake-${sizeMiB}`);
const image = join(work, "bench.qcow2");

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A qcow2 with `sizeMiB` of incompressible data allocated (made once, kept in the temp directory). */
async function makeImage(): Promise<void> {
  if (existsSync(image) && existsSync(join(work, "SHA256SUMS"))) return;
  mkdirSync(work, { recursive: true });
  const raw = join(work, "bench.raw");
  process.stderr.write(`making a ${sizeMiB} MiB qcow2 with random content in ${work}…\n`);
  execFileSync("sh", ["-c", `head -c ${sizeMiB}M /dev/urandom > "${raw}"`]);
  execFileSync("qemu-img", ["convert", "-q", "-O", "qcow2", raw, image]);
  rmSync(raw);
  writeFileSync(join(work, "SHA256SUMS"), `${await sha256Of(image)}  bench.qcow2\n`);
}

async function startServer(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(
    process.execPath,
    [new URL("../test/support/http-fixture-server.ts", import.meta.url).pathname, work],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the server exited (${code})`)));
  });
  return { url, stop: () => child.kill("SIGTERM") };
}

function timed<T>(run: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = process.hrtime.bigint();
  return run().then((value) => ({ seconds: Number(process.hrtime.bigint() - started) / 1e9, value }));
}

function curlSha256(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", `curl -s "${url}" | sha256sum`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
    });
    child.once("exit", (code) =>
      code === 0 ? resolve(out.split(" ")[0] ?? "") : reject(new Error(`curl | sha256sum: ${code}`)),
    );
  });
}

await makeImage();
const size = statSync(image).size;
// Both read the file from the page cache: warm it.
execFileSync("sh", ["-c", `cat "${image}" > /dev/null`]);
const server = await startServer();
const url = `${server.url}/bench.qcow2`;
const mibps = (seconds: number) => size / 2 ** 20 / seconds;
try {
  const baseline: number[] = [];
  const ours: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const curl = await timed(() => curlSha256(url));
    baseline.push(curl.seconds);
    const root = join(work, "store");
    rmSync(root, { recursive: true, force: true });
    const store = new ImageStore({ root });
    const pull = await timed(() => store.pull(url));
    ours.push(pull.seconds);
    if (pull.value.sha256 !== curl.value) throw new Error("the pulled image's sha256 differs from curl's");
    if (pull.value.checksum.status !== "verified") throw new Error(`checksum ${pull.value.checksum.status}`);
    process.stdout.write(
      `round ${round + 1}: curl | sha256sum ${mibps(curl.seconds).toFixed(0)} MiB/s, osimg image pull ${mibps(pull.seconds).toFixed(0)} MiB/s\n`,
    );
    rmSync(root, { recursive: true, force: true });
  }
  const best = (xs: number[]) => Math.min(...xs);
  const ratio = mibps(best(ours)) / mibps(best(baseline));
  const report = await probe(url, { discover: false });
  process.stdout.write(
    [
      "",
      `image: ${formatBytes(size)} qcow2 (${size} bytes) from a local HTTP server (Range, ETag)`,
      `curl -s URL | sha256sum   ${mibps(best(baseline)).toFixed(0)} MiB/s  (download + sha256, nothing stored)`,
      `osimg image pull          ${mibps(best(ours)).toFixed(0)} MiB/s  (download + sha256 + sha512 + write + verify + inspect + atomic publish)`,
      `ratio                     ${ratio.toFixed(2)}  (target >= 0.8)  best of ${rounds}`,
      `probe of the remote qcow2 ${report.bytesRead} bytes read (${(report.bytesRead / 1024).toFixed(1)} KiB; target <= 64 KiB), ` +
        `${report.format}, virtual ${formatBytes(report.virtualSize ?? 0)}, ${report.safety?.safe ? "safe" : "UNSAFE"}, ${report.ms} ms` +
        `  vs ${size} bytes for a full import (${(size / report.bytesRead).toFixed(0)}x)`,
      "",
    ].join("\n"),
  );
} finally {
  server.stop();
}
