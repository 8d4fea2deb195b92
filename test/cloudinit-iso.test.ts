// The ISO 9660 writer, read back by isoinfo (genisoimage): volume descriptors, the three name spaces
// (ISO 9660, Joliet, Rock Ridge) and file contents.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildIso, IsoError } from "../src/cloudinit/iso9660.ts";
import { buildNoCloudSeed, writeNoCloudIso } from "../src/cloudinit/nocloud.ts";

const dir = mkdtempSync(join(tmpdir(), "osimg-iso-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const isoinfo = (iso: string, ...args: string[]) =>
  execFileSync("isoinfo", ["-i", iso, ...args], { encoding: "utf8" });
const names = (listing: string) =>
  listing
    .split("\n")
    .filter((l) => /^[d-]/.test(l))
    .map((l) => l.replace(/^.*\]\s+/, "").trimEnd())
    .filter((n) => n !== "." && n !== "..");

const DATE = new Date("2025-03-04T05:06:07Z");

describe("NoCloud ISO", async () => {
  const seed = buildNoCloudSeed({
    cloudUser: "debian",
    sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv0bE1bJjAbkgMSW6sJ3Y2OTnjA7M9Zy6L9nIBsmL0y t@h"],
    instanceId: "iid-42",
    hostname: "micro1",
    networkConfig: { version: 2, ethernets: {} },
  });
  const iso = join(dir, "seed.iso");
  await writeNoCloudIso(iso, seed, DATE);

  it("has volume id cidata, Joliet and Rock Ridge", () => {
    const info = isoinfo(iso, "-d");
    expect(info).toMatch(/^Volume id: cidata$/m);
    expect(info).toMatch(/^Joliet with UCS level 3 found$/m);
    expect(info).toMatch(/^Rock Ridge signatures version 1 found$/m);
    const sectors = Number(/^Volume size is: (\d+)$/m.exec(info)?.[1]);
    expect(sectors * 2048).toBe(readFileSync(iso).length);
  });

  it("lists the files under their ISO 9660, Joliet and Rock Ridge names", () => {
    expect(names(isoinfo(iso, "-l"))).toEqual(["META_DATA.;1", "NETWORK_CONFIG.;1", "USER_DATA.;1"]);
    expect(names(isoinfo(iso, "-J", "-l"))).toEqual(["meta-data", "network-config", "user-data"]);
    const rr = isoinfo(iso, "-R", "-l");
    expect(names(rr)).toEqual(["meta-data", "network-config", "user-data"]);
    expect(rr).toMatch(/^-r--r--r-- +1 +0 +0 +\d+ Mar {2}4 2025 .*user-data\s*$/m);
  });

  it("gives back each file's bytes by every name", () => {
    expect(isoinfo(iso, "-R", "-x", "/user-data")).toBe(seed.userData);
    expect(isoinfo(iso, "-J", "-x", "/meta-data")).toBe(seed.metaData);
    expect(isoinfo(iso, "-x", "/NETWORK_CONFIG.;1")).toBe(seed.networkConfig);
  });
});

describe("ISO 9660 writer", () => {
  it("writes nested directories, empty and multi-sector files, and unique ISO names", () => {
    const big = "x".repeat(5000);
    const files = [
      { path: "openstack/latest/user_data", data: big },
      { path: "openstack/latest/meta_data.json", data: "{}" },
      { path: "empty", data: "" },
      { path: "a-b", data: "1" },
      { path: "a_b", data: "2" },
      { path: "Mixed Case/Ünïcode.txt", data: "u", mode: 0o600 },
      ...Array.from({ length: 40 }, (_, i) => ({ path: `many/file-with-a-long-name-${i}`, data: String(i) })),
    ];
    const iso = join(dir, "tree.iso");
    const bytes = buildIso({ volumeId: "TREE", files, date: DATE });
    writeFileSync(iso, bytes);
    expect(buildIso({ volumeId: "TREE", files, date: DATE }).equals(bytes)).toBe(true);

    const rr = isoinfo(iso, "-R", "-l");
    expect(rr).toContain("Directory listing of /openstack/latest/");
    expect(rr).toMatch(/^-rw------- .* Ünïcode\.txt\s*$/m);
    expect(isoinfo(iso, "-R", "-x", "/openstack/latest/user_data")).toBe(big);
    expect(isoinfo(iso, "-R", "-x", "/empty")).toBe("");
    expect(isoinfo(iso, "-J", "-x", "/a-b")).toBe("1");
    expect(isoinfo(iso, "-J", "-x", "/a_b")).toBe("2");
    const primary = names(isoinfo(iso, "-l").split("Directory listing of /MANY/")[0] as string);
    expect(primary).toContain("A_B.;1");
    expect(primary).toContain("A_B_1.;1");
    // 40 records with Rock Ridge entries need more than one directory sector; all are found.
    const many = names(rr.split("Directory listing of /many/")[1]?.split("Directory listing")[0] as string);
    expect(many).toHaveLength(40);
    expect(isoinfo(iso, "-R", "-x", "/many/file-with-a-long-name-39")).toBe("39");
  });

  it("rejects bad paths and labels with the path named", () => {
    const iso = (files: { path: string; data: string }[], volumeId = "x") => buildIso({ volumeId, files });
    expect(() => iso([{ path: "a//b", data: "" }])).toThrow(IsoError);
    expect(() => iso([{ path: "../x", data: "" }])).toThrow(/file path "\.\.\/x"/);
    expect(() => iso([{ path: "x".repeat(65), data: "" }])).toThrow(/longer than 64/);
    expect(() =>
      iso([
        { path: "a", data: "" },
        { path: "a", data: "" },
      ]),
    ).toThrow(/given twice/);
    expect(() =>
      iso([
        { path: "a", data: "" },
        { path: "a/b", data: "" },
      ]),
    ).toThrow(/"a" is a file/);
    expect(() => iso([], "a-volume-id-too-long")).toThrow(/volume id/);
  });
});
