// npm run bench:vm — time from `vm create` to Ready through a real `osimg serve` (a child process), for
// the micro guest and the Debian cloud image, against the ceiling measured in the same run: a bare
// qemu-system-x86_64 command line booting the same disk (an overlay on the same stored file) and the same
// NoCloud seed (the VM's own seed.iso) to the same marker, watched as closely as possible: cloud-init's
// finished line on the serial console or the guest agent's answer to guest-ping, whichever comes first,
// as the provider decides Ready. osimg's time includes the API, provisioning (overlay, seed, firmware),
// QEMU's start, the provider's readiness polling and this client's polling of the API (every 100 ms).
// Runs alternate between bare and osimg so that drift on this shared machine hits both alike. Then the
// peak RSS of the server process while 4 micro VMs boot and run, beside its RSS idle.
//   BENCH_ROUNDS: micro rounds (default 3); BENCH_DEBIAN_ROUNDS: Debian rounds (default 1, 0 skips it).
import { spawn } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Vm } from "../src/vms/model.ts";
import { probeAccelerator } from "../src/vms/providers/qemu/accel.ts";
import { pingAgent } from "../src/vms/providers/qemu/agent.ts";
import { isAlive, killProcess, waitForExit } from "../src/vms/providers/qemu/process.ts";
import { createOverlay } from "../src/vms/providers/qemu/scratch-vm.ts";
import { CLOUD_INIT_FINISHED, LogFollower } from "../src/vms/providers/qemu/serial-log.ts";
import { debianGuestImage, type GuestImage, microGuestImage } from "../test/support/guest-images.ts";
import { startFixtureServer } from "../test/support/http-fixture-server.ts";
import { qemuProcesses } from "../test/support/vm-api.ts";
import { freePort, percentile, printTable, startProcess, stop, verdict } from "./support.ts";

const MICRO_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
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

/** osimg: create → Ready as a client sees it; keeps a copy of the VM's seed for the bare runs. */
async function osimgRun(
  g: Guest,
  name: string,
  seedCopy?: string,
): Promise<{ wallMs: number; serverMs: number }> {
  const started = performance.now();
  await createVm(g, name);
  const vm = await waitReady(name);
  const wallMs = performance.now() - started;
  if (seedCopy) copyFileSync(join(dataDir, "vms", NS, name, "seed.iso"), seedCopy);
  await deleteVm(name);
  return { wallMs, serverMs: vm.status.timeToReadyMs ?? Number.NaN };
}

/** The ceiling: QEMU started by hand on an overlay of the same file with the same seed, watched closely. */
async function bareRun(g: Guest, basePath: string, seed: string): Promise<number> {
  const vmDir = mkdtempSync(join(dir, `bare-${g.id}-`));
  const disk = join(vmDir, "disk.qcow2");
  const serial = join(vmDir, "serial.log");
  const agentSocket = join(vmDir, "agent.sock");
  await createOverlay(disk, { path: basePath, format: "qcow2" }, g.storage.replace(/i$/, ""));
  const argv = [
    ...["-nodefaults", "-display", "none", "-machine", "q35", "-accel", accel],
    ...["-cpu", accel === "kvm" ? "host" : "max", "-smp", "1", "-m", `${g.memoryMiB}M`],
    ...[
      "-drive",
      `file=${disk},if=none,id=d0,format=qcow2`,
      "-device",
      "virtio-blk-pci,drive=d0,bootindex=1",
    ],
    ...[
      "-drive",
      `file=${seed},if=none,id=seed,format=raw,readonly=on`,
      "-device",
      "virtio-blk-pci,drive=seed",
    ],
    ...["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile="],
    ...["-serial", `file:${serial}`, "-device", "virtio-rng-pci", "-device", "virtio-serial-pci"],
    ...["-chardev", `socket,id=qga0,path=${agentSocket},server=on,wait=off`],
    ...["-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"],
  ];
  const started = performance.now();
  const qemu = spawn("qemu-system-x86_64", argv, { stdio: ["ignore", "ignore", "inherit"] });
  const pid = qemu.pid as number;
  try {
    const serialLog = new LogFollower(serial);
    let agentReady = false;
    let agentTrying = false;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!agentReady) {
      if ((await serialLog.next()).some((line) => CLOUD_INIT_FINISHED.test(line))) break;
      if (!agentTrying) {
        agentTrying = true;
        void pingAgent(agentSocket, { connectTimeoutMs: 200, timeoutMs: 1000 })
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
      if (!isAlive(pid) || Date.now() > deadline) throw new Error(`bare QEMU for ${g.id} did not get ready`);
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

try {
  const rows: (string | number)[][] = [];
  const ratios: { guest: string; ratio: number }[] = [];
  for (const g of guests) {
    const basePath = await pull(g);
    const seed = join(dir, `seed-${g.id}.iso`);
    // A first osimg run gives the seed for the bare runs (and warms the page cache for both).
    log(`${g.id}: warm-up run through osimg`);
    await osimgRun(g, `${g.id}-warm`, seed);
    const bare: number[] = [];
    const ours: number[] = [];
    const serverMs: number[] = [];
    for (let round = 0; round < g.rounds; round++) {
      const order = round % 2 === 0 ? ["bare", "osimg"] : ["osimg", "bare"];
      for (const which of order) {
        if (which === "bare") bare.push(await bareRun(g, basePath, seed));
        else {
          const run = await osimgRun(g, `${g.id}-${round}`);
          ours.push(run.wallMs);
          serverMs.push(run.serverMs);
        }
      }
      log(
        `${g.id} round ${round + 1}/${g.rounds}: bare ${(bare.at(-1) ?? 0) / 1000} s, osimg ${(ours.at(-1) ?? 0) / 1000} s`,
      );
    }
    const ratio = median(ours) / median(bare);
    ratios.push({ guest: g.id, ratio });
    rows.push(
      [`${g.id}: bare qemu-system-x86_64, same disk and seed (ceiling)`, median(bare) / 1000, "", g.rounds],
      [
        `${g.id}: osimg serve, POST /vms to phase Ready`,
        median(ours) / 1000,
        median(serverMs) / 1000,
        g.rounds,
      ],
    );
  }
  printTable(
    `Time to Ready (median seconds; ${accel.toUpperCase()}; bare = first console line or agent answer)`,
    ["run", "client s", "server's timeToReady s", "runs"],
    rows,
  );
  for (const { guest, ratio } of ratios)
    verdict(
      `${guest}: osimg / ceiling`,
      ratio <= RATIO_TARGET,
      `${ratio.toFixed(2)} (target <= ${RATIO_TARGET})`,
    );

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
