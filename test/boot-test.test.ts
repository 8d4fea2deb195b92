// bootTest() with real guests under TCG: the micro guest passes under SeaBIOS and OVMF (the test marker
// from its user-data, cloud-init's line, the guest agent), and disks that cannot boot fail with the reason
// and the console's last lines, at once where the firmware says so.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootTest, bootTestUserData, deadEnd } from "../src/images/boot-test.ts";
import { type GuestImage, microGuestImage } from "./support/guest-images.ts";
import { tempDir } from "./support/server.ts";

const BOOT_MS = 240_000;
let micro: GuestImage;
let dir: string;

/** The micro disk as raw with both GPT copies and the MBR zeroed: nothing says where to boot from. */
async function zeroedPartitionTables(): Promise<string> {
  const raw = join(dir, "no-partitions.raw");
  execFileSync("qemu-img", ["convert", "-O", "raw", micro.path, raw]);
  const handle = await open(raw, "r+");
  try {
    const { size } = await handle.stat();
    const zeros = Buffer.alloc(2 ** 20);
    await handle.write(zeros, 0, zeros.length, 0);
    await handle.write(zeros, 0, zeros.length, size - zeros.length);
  } finally {
    await handle.close();
  }
  return raw;
}

beforeAll(async () => {
  micro = await microGuestImage();
  dir = tempDir("osimg-boot-test-");
}, 600_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the test cloud-init", () => {
  it("prints a marker with this run's nonce, which the user-data itself does not contain", () => {
    const { userData, marker } = bootTestUserData("a1b2c3");
    expect(userData.startsWith("#cloud-config\n")).toBe(true);
    expect(marker.test("osimg-boot-test a1b2c3 passed")).toBe(true);
    expect(marker.test("osimg-boot-test ffffff passed")).toBe(false);
    expect(() => bootTestUserData("a b; reboot")).toThrow(/nonce/);
  });

  it("knows the console lines that end a boot", () => {
    expect(deadEnd("UEFI Interactive Shell v2.2")).toMatch(/^the UEFI firmware found nothing to boot/);
    expect(deadEnd("[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs")).toBe(
      "the kernel panicked: [    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs",
    );
    expect(deadEnd("You are in emergency mode. After logging in, type ...")).toMatch(/emergency mode/);
    expect(deadEnd("ALERT!  UUID=1234 does not exist.  Dropping to a shell!")).toMatch(/root file system/);
    expect(deadEnd("[  OK  ] Reached target Multi-User System.")).toBeUndefined();
  });
});

describe("bootTest", () => {
  for (const firmware of ["bios", "efi"] as const)
    it(
      `passes the micro guest under ${firmware === "bios" ? "SeaBIOS" : "OVMF"}`,
      async () => {
        const result = await bootTest({ image: micro.path, firmware, timeoutMs: BOOT_MS, memoryMiB: 256 });
        expect(result.ok, `${result.reason}\n${result.lastConsoleLines.join("\n")}`).toBe(true);
        expect(result).toMatchObject({
          firmware,
          seen: { marker: true, cloudInitFinished: true, agent: true },
          readyLine: expect.stringMatching(/^Cloud-init v\. 0\.0-osimg-micro finished at/),
        });
        expect(result.timeToReadyMs).toBeGreaterThan(0);
        expect(["kvm", "tcg"]).toContain(result.accelerator);
        expect(result.lastConsoleLines.some((l) => l.includes("osimg-micro: ready"))).toBe(true);
      },
      BOOT_MS + 30_000,
    );

  it(
    "fails a disk without partition tables under OVMF: the firmware's shell, with its console lines",
    async () => {
      const result = await bootTest({
        image: await zeroedPartitionTables(),
        firmware: "efi",
        timeoutMs: BOOT_MS,
        memoryMiB: 256,
      });
      expect(result.ok).toBe(false);
      expect(result.reason).toMatch(/^the UEFI firmware found nothing to boot and started its shell/);
      expect(result.lastConsoleLines.some((l) => l.startsWith("BdsDxe: failed to load"))).toBe(true);
      // Escape sequences of the firmware's screen drawing are gone.
      expect(result.lastConsoleLines.join("\n")).not.toContain("\x1b");
      expect(result.seen).toEqual({ marker: false, cloudInitFinished: false, agent: false });
    },
    BOOT_MS + 30_000,
  );

  it(
    "fails a disk of random bytes under SeaBIOS: no bootable device, from the BIOS's own log",
    async () => {
      const random = join(dir, "random.raw");
      await writeFile(random, randomBytes(16 * 2 ** 20));
      const result = await bootTest({ image: random, firmware: "bios", timeoutMs: BOOT_MS, memoryMiB: 256 });
      expect(result.ok).toBe(false);
      expect(result.reason).toMatch(/^the BIOS found no bootable device \(Hard Disk: not a bootable disk/);
      // SeaBIOS writes nothing on the serial console.
      expect(result.lastConsoleLines).toEqual([]);
    },
    BOOT_MS + 30_000,
  );

  it("fails at the timeout when the marker does not come, and says so", async () => {
    const result = await bootTest({ image: micro.path, firmware: "bios", timeoutMs: 2000, memoryMiB: 256 });
    expect(result).toMatchObject({ ok: false, firmware: "bios" });
    expect(result.reason).toMatch(/^no test marker on the serial console within 2 s/);
  }, 60_000);

  it("fails with QEMU's words when the image cannot be opened", async () => {
    const result = await bootTest({ image: join(dir, "missing.qcow2"), firmware: "bios", timeoutMs: 10_000 });
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/missing\.qcow2/);
  }, 60_000);
});
