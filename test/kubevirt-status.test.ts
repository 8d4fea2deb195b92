// A VM's status from KubeVirt's and CDI's objects (pure): phases from printableStatus, the instance and
// the DataVolumes; import progress as a percentage; conditions, addresses, times.
import { describe, expect, it } from "vitest";
import {
  type KubeDataVolume,
  type KubeVirtualMachine,
  type KubeVirtualMachineInstance,
  parseProgress,
  phaseOf,
  recordedSpec,
  statusOf,
} from "../src/vms/providers/kubevirt/status.ts";

const CREATED = "2026-11-20T10:00:00Z";
const vm = (status?: KubeVirtualMachine["status"], runStrategy = "Always"): KubeVirtualMachine => ({
  metadata: { name: "web", namespace: "shop", creationTimestamp: CREATED },
  spec: { runStrategy, dataVolumeTemplates: [{ metadata: { name: "web-rootdisk" } }] },
  ...(status ? { status } : {}),
});
const dv = (
  phase: string,
  progress = "N/A",
  source: Record<string, unknown> = { http: {} },
): KubeDataVolume => ({
  metadata: { name: "web-rootdisk", namespace: "shop" },
  spec: { source },
  status: { phase, progress },
});
const vmi = (status: KubeVirtualMachineInstance["status"]): KubeVirtualMachineInstance => ({
  metadata: { name: "web", namespace: "shop", creationTimestamp: "2026-11-20T10:01:00Z" },
  status,
});

describe("phases", () => {
  it("follows printableStatus", () => {
    const cases: [string, boolean, string][] = [
      ["Stopped", false, "Stopped"],
      ["Provisioning", false, "Provisioning"],
      ["WaitingForVolumeBinding", false, "Provisioning"],
      ["Starting", false, "Starting"],
      ["Running", false, "Running"],
      ["Running", true, "Ready"],
      ["Migrating", true, "Ready"],
      ["Paused", false, "Paused"],
      ["Stopping", false, "Stopping"],
      ["Terminating", false, "Stopping"],
      ["CrashLoopBackOff", false, "Failed"],
      ["ErrorUnschedulable", false, "Failed"],
      ["ErrImagePull", false, "Failed"],
      ["DataVolumeError", false, "Failed"],
    ];
    const running = vmi({ phase: "Running" });
    for (const [printableStatus, ready, phase] of cases)
      expect(phaseOf(vm({ printableStatus, ready }), running, [dv("Succeeded")]), printableStatus).toBe(
        phase,
      );
  });

  it("says Starting while the instance of a running VM is not running yet (a restart)", () => {
    const ready = vm({ printableStatus: "Running", ready: true });
    expect(phaseOf(ready, vmi({ phase: "Scheduling" }), [])).toBe("Starting");
    expect(phaseOf(ready, undefined, [])).toBe("Starting");
  });

  it("says Paused when the instance is paused, Failed when it or an import failed", () => {
    const paused = vmi({ phase: "Running", conditions: [{ type: "Paused", status: "True" }] });
    expect(phaseOf(vm({ printableStatus: "Running", ready: true }), paused, [])).toBe("Paused");
    expect(phaseOf(vm({ printableStatus: "Running" }), vmi({ phase: "Failed" }), [])).toBe("Failed");
    expect(phaseOf(vm({ printableStatus: "Provisioning" }), undefined, [dv("Failed")])).toBe("Failed");
  });

  it("before KubeVirt wrote a status: provisioning while a disk is to be imported, else by run strategy", () => {
    expect(phaseOf(vm(), undefined, [])).toBe("Provisioning");
    expect(phaseOf(vm(), undefined, [dv("ImportInProgress", "10.00%")])).toBe("Provisioning");
    expect(phaseOf(vm(undefined, "Halted"), undefined, [dv("Succeeded")])).toBe("Stopped");
    expect(phaseOf(vm(undefined, "Always"), undefined, [dv("Succeeded")])).toBe("Starting");
  });
});

describe("status", () => {
  it("reports import progress as a percentage while provisioning, the lowest of the imports", () => {
    expect(parseProgress("33.33%")).toBe(33.33);
    expect(parseProgress("100.0%")).toBe(100);
    expect(parseProgress("N/A")).toBeUndefined();
    const status = statusOf(vm({ printableStatus: "Provisioning" }), undefined, [
      dv("ImportInProgress", "66.67%"),
      { ...dv("ImportInProgress", "12.50%"), metadata: { name: "web-installer", namespace: "shop" } },
      // A blank root disk is not an import.
      { ...dv("Pending", "N/A", { blank: {} }), metadata: { name: "blank", namespace: "shop" } },
    ]);
    expect(status.phase).toBe("Provisioning");
    expect(status.importProgress).toBe(12.5);
    expect(status.conditions.filter((c) => c.type === "ImageImported").map((c) => c.message)).toEqual([
      "DataVolume web-rootdisk: ImportInProgress 66.67%",
      "DataVolume web-installer: ImportInProgress 12.50%",
    ]);
    const done = statusOf(vm({ printableStatus: "Running", ready: true }), undefined, [
      dv("Succeeded", "100.0%"),
    ]);
    expect(done.importProgress).toBeUndefined();
  });

  it("maps conditions, addresses, node, start and ready times, and the console paths", () => {
    const status = statusOf(
      vm({
        printableStatus: "Running",
        ready: true,
        conditions: [
          { type: "Ready", status: "True", lastTransitionTime: "2026-11-20T10:01:40Z" },
          { type: "AgentConnected", status: "True" },
        ],
      }),
      vmi({
        phase: "Running",
        nodeName: "node-3",
        interfaces: [
          { name: "default", ipAddress: "10.0.0.5", ipAddresses: ["10.0.0.5", "fd00::5"] },
          { name: "second", ipAddress: "10.1.0.5" },
        ],
        phaseTransitionTimestamps: [
          { phase: "Scheduled", phaseTransitionTimestamp: "2026-11-20T10:01:05Z" },
          { phase: "Running", phaseTransitionTimestamp: "2026-11-20T10:01:10Z" },
        ],
      }),
      [dv("Succeeded", "100.0%")],
    );
    expect(status).toMatchObject({
      phase: "Ready",
      ipAddresses: ["10.0.0.5", "fd00::5", "10.1.0.5"],
      runtime: "KubeVirt, node node-3",
      startedAt: "2026-11-20T10:01:10Z",
      readyAt: "2026-11-20T10:01:40Z",
      timeToReadyMs: 40_000,
      consoles: {
        serial: "/api/v1/namespaces/shop/vms/web/console",
        vnc: "/api/v1/namespaces/shop/vms/web/vnc",
      },
    });
    expect(status.conditions).toContainEqual({
      type: "AgentConnected",
      status: "True",
      reason: "AgentConnected",
      lastTransitionTime: CREATED,
    });
  });

  it("reads the spec osimg recorded, and knows VMs it did not make", () => {
    expect(recordedSpec(vm())).toBeUndefined();
    const broken = vm();
    broken.metadata.annotations = { "osimg.io/spec": "{not json" };
    expect(recordedSpec(broken)).toBeUndefined();
  });
});
