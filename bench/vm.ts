// npm run bench:vm — time from `vm create` to Ready through a real `osimg serve` (a child process), for
// the micro guest and the Debian cloud image, against the ceiling measured in the same run: a bare
// qemu-system-x86_64 started by hand on the same disk (an overlay on the same stored file) and the same
// NoCloud seed (the VM's own seed.iso), with the very command line osimg ran (read from /proc), watched as
// closely as possible for the same marker: cloud-init's finished line on the serial console or the guest
// agent's answer to guest-ping, whichever comes first, as the provider decides Ready. A minimal command
// line (no VGA/VNC, USB tablet, QMP) is timed too, to show what those devices cost. osimg's time includes
// the API, provisioning (overlay, seed, firmware), QEMU's start, the provider's readiness polling and this
// client's polling of the API (every 100 ms). The order of the runs rotates each round so that drift on
// this shared machine hits all alike. Then the peak RSS of the server process while 4 micro VMs boot and
// run, beside its RSS idle.
//   BENCH_ROUNDS: micro rounds (default 5); BENCH_DEBIAN_ROUNDS: Debian rounds (default 1, 0 skips it).
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { Vm } from "../src/vms/model.ts";
import { probeAccelerator } from "../src/vms/providers/qemu/accel.ts";
import { pingAgent } from "../src/vms/providers/qemu/agent.ts";
import { isAlive, killProcess, spawnDetached, waitForExit } from "../src/vms/providers/qemu/process.ts";
import { createOverlay } from "../src/vms/providers/qemu/scratch-vm.ts";
import { CLOUD_INIT_FINISHED, LogFollower } from "../src/vms/providers/qemu/serial-log.ts";
import { debianGuestImage, type GuestImage, microGuestImage } from "../test/support/guest-images.ts";
import { startFixtureServer } from "../test/support/http-fixture-server.ts";
import { qemuProcesses } from "../test/support/vm-api.ts";
import { freePort, percentile, printTable, startProcess, stop, verdict } from "./support.ts";

const MICRO_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const DEBIAN_ROUNDS = Number(process.env.BENCH_DEBIAN_ROUNDS ?? 1);
const READY_TIMEOUT_MS = 15 * 60_000;
const NS = "bench";
const RATIO_TARGET = 1.1;
const RSS_VMS = 4;

interface Guest {
  id: string;
  osName: string;
  image: GuestImage;
  memory: string;
  memoryMiB: number;
  storage: string;
  rounds: number;
}

const log = (line: string) => console.log(line);
const micro = await microGuestImage({ log });
const debian = DEBIAN_ROUNDS > 0 ? await debianGuestImage({ log }) : undefined;
const guests: Guest[] = [
  {
    id: "micro",
    osName: "Micro",
    image: micro,
    memory: "256Mi",
    memoryMiB: 256,
    storage: "1Gi",
    rounds: MICRO_ROUNDS,
  },
];
if (debian)
  guests.push({
    id: "debian",
    osName: "Debian",
    image: debian,
    memory: "1Gi",
    memoryMiB: 1024,
    storage: "4Gi",
    rounds: DEBIAN_ROUNDS,
  });

const dir = mkdtempSync(join(tmpdir(), "osimg-bench-vm-"));
const dataDir = join(dir, "data");
const www = join(dir, "www");
mkdirSync(www);
for (const g of guests) symlinkSync(g.image.path, join(www, `${g.id}.qcow2`));
const files = await startFixtureServer({ root: www });
const catalogPath = join(dir, "images.yaml");
writeFileSync(
  catalogPath,
  `images:\n${guests
    .map(
      (g) =>
        `  - OS_NAME: "${g.osName}"\n    CLOUD_USER: ${g.image.cloudUser}\n    OS_IMAGE_URL: "${files.url}/${g.id}.qcow2"\n    MIN_MEMORY: "${g.memory}"\n    FIRMWARE_TYPE: "bios"\n`,
    )
    .join("")}`,
);
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const bin = new URL("../bin/osimg.js", import.meta.url).pathname;
const server = await startProcess(
  process.execPath,
  [bin, "serve", "--auth", "none", "--catalog", catalogPath, "--port", String(port), "--data-dir", dataDir],
  `${base}/readyz`,
  { OSIMG_LOG_LEVEL: "warn", OSIMG_FETCH_ALLOW: new URL(files.url).host },
);
const accel = (await probeAccelerator()).accel;

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The image in the server's store before any timing: creating a VM then measures booting, not downloading. */
async function pull(g: Guest): Promise<string> {
  const job = await api<{ id: string }>("POST", `/api/v1/images/${g.id}/pull`);
  if (job.status !== 202) throw new Error(`pull ${g.id}: HTTP ${job.status} ${JSON.stringify(job.body)}`);
  for (;;) {
    const { body } = await api<{ state: string; image?: { sha256: string }; error?: { message: string } }>(
      "GET",
      `/api/v1/pulls/${job.body.id}`,
    );
    if (body.state === "done" && body.image) return join(dataDir, "images", "sha256", body.image.sha256);
    if (body.state === "failed") throw new Error(`pull ${g.id}: ${body.error?.message}`);
    await sleep(200);
  }
}

async function waitReady(name: string): Promise<Vm> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const { body: vm } = await api<Vm>("GET", `/api/v1/namespaces/${NS}/vms/${name}`);
    if (vm.status.phase === "Ready") return vm;
    if (vm.status.phase === "Failed" || Date.now() > deadline)
      throw new Error(`VM ${name} is ${vm.status.phase}: ${JSON.stringify(vm.status.conditions)}`);
    await sleep(100);
  }
}

async function createVm(g: Guest, name: string): Promise<void> {
  const created = await api("POST", `/api/v1/namespaces/${NS}/vms`, {
    name,
    image: g.osName,
    cpu: 1,
    memory: g.memory,
    storage: g.storage,
  });
  if (created.status !== 201)
    throw new Error(`create ${name}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
}

async function deleteVm(name: string): Promise<void> {
  const { status } = await api("DELETE", `/api/v1/namespaces/${NS}/vms/${name}`);
  if (status !== 204) throw new Error(`delete ${name}: HTTP ${status}`);
}

/** osimg: create → Ready as a client sees it. `keep` copies the VM's seed and QEMU command line first. */
async function osimgRun(
  g: Guest,
  name: string,
  keep?: { seed: string },
): Promise<{ wallMs: number; serverMs: number; argv?: string[] }> {
  const started = performance.now();
  await createVm(g, name);
  const vm = await waitReady(name);
  const wallMs = performance.now() - started;
  let argv: string[] | undefined;
  if (keep) {
    const vmDir = join(dataDir, "vms", NS, name);
    copyFileSync(join(vmDir, "seed.iso"), keep.seed);
    const [pid] = await qemuProcesses(vmDir);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    // The VM's directory becomes a placeholder: a hand-started copy gets a directory of its own.
    argv = cmdline.slice(1).map((a) => a.replaceAll(vmDir, "@DIR@"));
  }
  await deleteVm(name);
  return { wallMs, serverMs: vm.status.timeToReadyMs ?? Number.NaN, ...(argv ? { argv } : {}) };
}

/** A minimal command line for the same disk and seed: no display, USB, VNC, QMP or TPM. */
function minimalArgv(g: Guest): string[] {
  return [
    ...["-nodefaults", "-display", "none", "-machine", "q35", "-accel", accel],
    ...["-cpu", accel === "kvm" ? "host" : "max", "-smp", "1", "-m", `${g.memoryMiB}M`],
    ...["-drive", "file=@DIR@/disk.qcow2,if=none,id=d0,format=qcow2"],
    ...["-device", "virtio-blk-pci,drive=d0,bootindex=1"],
    ...["-drive", "file=@DIR@/seed.iso,if=none,id=seed,format=raw,readonly=on"],
    ...["-device", "virtio-blk-pci,drive=seed"],
    ...["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile="],
    ...["-serial", "file:@DIR@/serial.log", "-device", "virtio-rng-pci", "-device", "virtio-serial-pci"],
    ...["-chardev", "socket,id=qga0,path=@DIR@/agent.sock,server=on,wait=off"],
    ...["-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"],
  ];
}

/**
 * A ceiling: QEMU started by hand with `argv` (@DIR@ = a fresh directory holding an overlay of the same
 * stored file and a copy of the seed), watched closely: the console every 50 ms, the agent continuously.
 */
async function handRun(g: Guest, basePath: string, seed: string, template: string[]): Promise<number> {
  const vmDir = mkdtempSync(join(dir, `hand-${g.id}-`));
  await createOverlay(
    join(vmDir, "disk.qcow2"),
    { path: basePath, format: "qcow2" },
    g.storage.replace(/i$/, ""),
  );
  copyFileSync(seed, join(vmDir, "seed.iso"));
  const port = await freePort();
  const argv = template.map((a) =>
    a.replaceAll("@DIR@", vmDir).replace(/hostfwd=tcp:127\.0\.0\.1:\d+-/, `hostfwd=tcp:127.0.0.1:${port}-`),
  );
  const started = performance.now();
  // Started as the provider starts QEMU (its own session, output to a log): under CPU contention a process
  // in a session of its own is scheduled as a group of its own, and the ceiling must not differ in that.
  const { pid } = await spawnDetached("qemu-system-x86_64", argv, join(vmDir, "qemu.log"));
  try {
    const serialLog = new LogFollower(join(vmDir, "serial.log"));
    let agentReady = false;
    let agentTrying = false;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!agentReady) {
      if ((await serialLog.next()).some((line) => CLOUD_INIT_FINISHED.test(line))) break;
      if (!agentTrying) {
        agentTrying = true;
        void pingAgent(join(vmDir, "agent.sock"), { connectTimeoutMs: 200, timeoutMs: 1000 })
          .then(
            (client) => {
              client.close();
              agentReady = true;
            },
            () => undefined,
          )
          .finally(() => {
            agentTrying = false;
          });
      }
      if (!isAlive(pid) || Date.now() > deadline)
        throw new Error(`hand-started QEMU for ${g.id} did not get ready`);
      await sleep(50);
    }
    return performance.now() - started;
  } finally {
    killProcess(pid, "SIGKILL");
    await waitForExit(pid, 10_000);
    rmSync(vmDir, { recursive: true, force: true });
  }
}

/** Resident memory of a process, in MiB: now (VmRSS) and its peak so far (VmHWM). */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024 };
}

const median = (values: number[]) => percentile(values, 50);

/** The machine's 1-minute load average: other work on these 2 cores makes single runs vary by 2x. */
const load = () => loadavg()[0]?.toFixed(1) ?? "?";

try {
  log(`load average at the start: ${load()}`);
  const rows: (string | number)[][] = [];
  const ratios: { guest: string; same: number; minimal: number }[] = [];
  for (const g of guests) {
    const basePath = await pull(g);
    const seed = join(dir, `seed-${g.id}.iso`);
    // A first osimg run gives the seed and QEMU command line for the hand-started runs (and warms the
    // page cache for all of them).
    log(`${g.id}: warm-up run through osimg`);
    const { argv } = await osimgRun(g, `${g.id}-warm`, { seed });
    const kinds = { same: argv as string[], minimal: minimalArgv(g) };
    const times: Record<"osimg" | "server" | "same" | "minimal", number[]> = {
      osimg: [],
      server: [],
      same: [],
      minimal: [],
    };
    for (let round = 0; round < g.rounds; round++) {
      const order = ["same", "osimg", "minimal"] as const;
      // Rotated each round: no kind always runs right after another.
      for (let k = 0; k < order.length; k++) {
        const which = order[(k + round) % order.length] as (typeof order)[number];
        if (which === "osimg") {
          const run = await osimgRun(g, `${g.id}-${round}`);
          times.osimg.push(run.wallMs);
          times.server.push(run.serverMs);
        } else times[which].push(await handRun(g, basePath, seed, kinds[which]));
      }
      const last = (v: number[]) => `${((v.at(-1) ?? 0) / 1000).toFixed(1)} s`;
      log(
        `${g.id} round ${round + 1}/${g.rounds}: osimg ${last(times.osimg)}, same command line by hand ${last(times.same)}, minimal ${last(times.minimal)}`,
      );
    }
    const m = (v: number[]) => median(v) / 1000;
    ratios.push({
      guest: g.id,
      same: median(times.osimg) / median(times.same),
      minimal: median(times.osimg) / median(times.minimal),
    });
    rows.push(
      [`${g.id}: qemu-system-x86_64 by hand, minimal command line`, m(times.minimal), "", g.rounds],
      [`${g.id}: qemu-system-x86_64 by hand, osimg's command line (ceiling)`, m(times.same), "", g.rounds],
      [`${g.id}: osimg serve, POST /vms to phase Ready`, m(times.osimg), m(times.server), g.rounds],
    );
  }
  printTable(
    `Time to Ready (median seconds, ${accel.toUpperCase()}, load average now ${load()}; by hand: to cloud-init's finished line or the agent's answer)`,
    ["run", "client s", "server's timeToReady s", "runs"],
    rows,
  );
  for (const { guest, same, minimal } of ratios) {
    verdict(
      `${guest}: osimg / ceiling`,
      same <= RATIO_TARGET,
      `${same.toFixed(2)} (target <= ${RATIO_TARGET})`,
    );
    console.log(
      `      ${guest}: osimg / minimal command line: ${minimal.toFixed(2)} (what VNC, USB tablet and QMP cost)`,
    );
  }

  // Memory: the server while VMs boot and run (QEMU is a process of its own, shown for scale).
  const pid = server.pid as number;
  const idle = memoryOf(pid).rss;
  const names = Array.from({ length: RSS_VMS }, (_, i) => `rss-${i + 1}`);
  const microGuest = guests[0] as Guest;
  let peak = idle;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, memoryOf(pid).rss);
      await sleep(100);
    }
  })();
  await Promise.all(names.map((name) => createVm(microGuest, name)));
  await Promise.all(names.map((name) => waitReady(name)));
  await sleep(5000); // running, consoles idle
  sampling = false;
  await sampler;
  const qemuRss = (await qemuProcesses(dataDir)).reduce((sum, p) => sum + memoryOf(p).rss, 0);
  for (const name of names) await deleteVm(name);
  printTable(
    `Server memory while ${RSS_VMS} micro VMs boot and run (MiB)`,
    ["process", "RSS"],
    [
      ["osimg serve, idle before (baseline)", idle],
      [`osimg serve, peak with ${RSS_VMS} VMs`, peak],
      [`osimg serve, lifetime peak (VmHWM)`, memoryOf(pid).hwm],
      [`the ${RSS_VMS} QEMU processes together (for scale)`, qemuRss],
    ],
  );
} finally {
  // VMs run detached from the server: whatever a failed run left is ended here, by pid.
  for (const pid of await qemuProcesses(dataDir)) killProcess(pid, "SIGKILL");
  await stop(server);
  await files.stop();
  rmSync(dir, { recursive: true, force: true });
}
