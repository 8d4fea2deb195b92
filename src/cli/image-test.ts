// `osimg image test ID|PATH|URL`: does the image boot? It boots as a throw-away VM with a test cloud-init
// whose marker must reach the serial console (src/images/boot-test.ts). For a catalog entry the image is
// pulled into the store first (verified) and the result is recorded on the entry in the data directory,
// where `osimg serve` shows it on GET /api/v1/catalog; with --server the server runs the test instead.
import { existsSync } from "node:fs";
import { type Command, InvalidArgumentError } from "commander";
import { defaultDataDir } from "../config/paths.ts";
import { type BootTestReport, BootTests, bootTestImage, entrySubject } from "../images/boot-tests.ts";
import { FetchPolicy } from "../images/fetch-policy.ts";
import { isUrl } from "../images/probe.ts";
import { ImageStore } from "../images/store.ts";
import { seconds } from "./catalog-verify.ts";
import { ApiClient, ApiRequestError, handled } from "./client.ts";
import { loadCatalogEntries, progressReporter } from "./image.ts";

interface Flags {
  firmware?: "bios" | "efi";
  timeout: number;
  json?: boolean;
  catalog?: string;
  dataDir: string;
  cloudUser: string;
  server?: string;
}

function firmware(value: string): "bios" | "efi" {
  if (value !== "bios" && value !== "efi") throw new InvalidArgumentError("bios or efi");
  return value;
}

/** The verdict a person reads: PASS/FAIL, how long, what was seen, and on failure the console's last lines. */
export function renderBootTest(subject: string, report: BootTestReport): string {
  const under = `under ${report.firmware}${report.secureBoot ? " (secure boot)" : ""}`;
  const lines: string[] = [];
  if (report.ok) {
    const seen = report.seen;
    const also = [
      seen?.cloudInitFinished ? "cloud-init finished" : undefined,
      seen?.agent ? "the guest agent answered" : seen ? "no guest agent answered" : undefined,
    ].filter(Boolean);
    lines.push(
      `PASS  ${subject} booted ${under} in ${((report.timeToReadyMs ?? 0) / 1000).toFixed(1)} s: ` +
        `the test marker reached the serial console${also.length > 0 ? `; ${also.join("; ")}` : ""}`,
    );
  } else lines.push(`FAIL  ${subject} ${under}: ${report.reason ?? "did not boot"}`);
  const image = report.image;
  if (image.sha256)
    lines.push(`      image sha256:${image.sha256.slice(0, 16)}… (${image.format ?? "?"}) from ${image.url}`);
  else if (image.path) lines.push(`      image ${image.path}`);
  if (report.accelerator) lines.push(`      accelerator ${report.accelerator}`);
  if (!report.ok && report.lastConsoleLines.length > 0) {
    lines.push("last console lines:");
    for (const line of report.lastConsoleLines) lines.push(`  | ${line}`);
  }
  return lines.join("\n");
}

function print(subject: string, report: BootTestReport, flags: Flags, note?: string): void {
  if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${renderBootTest(subject, report)}\n${note ? `      ${note}\n` : ""}`);
  process.exitCode = report.ok ? 0 : 1;
}

/** On a server: start the entry's boot test (or follow the one running) and wait for its result. */
async function onServer(id: string, flags: Flags & { server: string }): Promise<void> {
  const api = new ApiClient({ server: flags.server, token: process.env.OSIMG_TOKEN });
  const path = `/api/v1/images/${encodeURIComponent(id)}/boot-test`;
  try {
    await api.request("POST", path, {
      ...(flags.firmware ? { firmware: flags.firmware } : {}),
      timeoutSeconds: Math.round(flags.timeout),
    });
  } catch (error) {
    if (!(error instanceof ApiRequestError && error.body.error === "boot_test_running")) throw error;
    process.stderr.write(`${error.message}; following it\n`);
  }
  let phase = "";
  for (;;) {
    const test = await api.request<{ state: string; phase?: string; result?: BootTestReport }>("GET", path);
    if (test.state === "done" && test.result) {
      print(id, test.result, flags, `recorded on ${flags.server} (GET /api/v1/catalog: bootTest)`);
      return;
    }
    const now = test.phase ? `${test.state}: ${test.phase}` : test.state;
    if (now !== phase && !flags.json) process.stderr.write(`${now}…\n`);
    phase = now;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export function registerImageTest(image: Command): Command {
  image
    .command("test")
    .description(
      "boot an image with a test cloud-init: it passes when the test's marker reaches the serial console",
    )
    .argument(
      "<id|path|url>",
      "a catalog entry id (its image is pulled into the store first, verified, and the result is recorded on the entry), a disk image file, or an http(s) URL (pulled into the store first)",
    )
    .option("--firmware <bios|efi>", "default: the entry's FIRMWARE_TYPE, else bios", firmware)
    .option("--timeout <seconds>", "until the test marker must be on the console", seconds, 600)
    .option("--json", "print the result as JSON")
    .option(
      "--catalog <path>",
      "catalog to find entry ids in (default: the data directory's, else the built-in one)",
    )
    .option("--data-dir <dir>", "where osimg keeps its data (the store, the results)", defaultDataDir())
    .option("--cloud-user <name>", "the user cloud-init creates, for a file or URL", "debian")
    .option("--server <url>", "run the test on this osimg server instead (catalog entries only)")
    .action(
      handled(async (target: string, flags: Flags) => {
        if (flags.server) return onServer(target, { ...flags, server: flags.server });
        const abort = new AbortController();
        const onSignal = () => abort.abort();
        process.once("SIGINT", onSignal);
        const progress = progressReporter();
        const store = ImageStore.forDataDir(flags.dataDir, { policy: FetchPolicy.open() });
        const options = {
          store,
          timeoutMs: flags.timeout * 1000,
          signal: abort.signal,
          onPullProgress: progress.onProgress,
          onPhase: (phase: "pull" | "boot") => {
            if (phase === "boot") progress.stop();
            if (!flags.json)
              process.stderr.write(phase === "pull" ? "pulling the image…\n" : "booting the image…\n");
          },
        };
        try {
          if (isUrl(target) || existsSync(target)) {
            const source = isUrl(target) ? { pull: target } : { path: target };
            const subject = { source, firmware: flags.firmware ?? "bios", cloudUser: flags.cloudUser };
            print(target, await bootTestImage(subject, options), flags);
            return;
          }
          const { entries, path } = await loadCatalogEntries(flags.catalog, flags.dataDir);
          const entry = entries.find((e) => e.id === target);
          const subject = entry && entrySubject(entry, flags.firmware);
          if (!subject) {
            process.stderr.write(
              `osimg: "${target}" is neither a file, a URL, nor an entry of ${path}` +
                `${entry ? " with an OS_IMAGE_URL" : ""}; entries: ${entries.map((e) => e.id).join(", ")}\n`,
            );
            process.exitCode = 2;
            return;
          }
          const report = await bootTestImage(subject, options);
          if (abort.signal.aborted) {
            process.stderr.write("osimg: interrupted; nothing recorded\n");
            process.exitCode = 3;
            return;
          }
          const results = BootTests.forDataDir(flags.dataDir, { store });
          await results.record(entry.id, report);
          print(entry.id, report, flags, `recorded on entry ${entry.id} in ${flags.dataDir}`);
        } finally {
          progress.stop();
          process.off("SIGINT", onSignal);
        }
      }),
    );
  return image;
}
