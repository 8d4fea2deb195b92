import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { buildNoCloudSeed, dhcpNetworkConfig, metaData } from "../src/cloudinit/nocloud.ts";
import { mergeUserData, SCRIPTS_DIR, UserDataError } from "../src/cloudinit/userdata.ts";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv0bE1bJjAbkgMSW6sJ3Y2OTnjA7M9Zy6L9nIBsmL0y alice@laptop";
const KEY2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob";

/** cloud-init reads YAML 1.1: parse the same way to see what it sees. */
const read = (text: string) => {
  expect(text.startsWith("#cloud-config\n")).toBe(true);
  return parse(text, { version: "1.1" }) as Record<string, unknown>;
};

describe("mergeUserData", () => {
  it("gives keys to CLOUD_USER and keeps the distro default user", () => {
    const out = mergeUserData(undefined, { cloudUser: "ubuntu", sshKeys: [KEY] });
    expect(out.format).toBe("cloud-config");
    expect(read(out.text)).toEqual({
      users: [
        "default",
        {
          name: "ubuntu",
          sudo: "ALL=(ALL) NOPASSWD:ALL",
          shell: "/bin/bash",
          lock_passwd: true,
          ssh_authorized_keys: [KEY],
        },
      ],
    });
  });

  it("appends packages, runcmd and write_files from the user to the catalog's, keeping formatting", () => {
    const catalog =
      "#cloud-config\n# from the catalog\npackages: [qemu-guest-agent]\nruncmd:\n  - systemctl enable --now qemu-guest-agent\nwrite_files:\n  - path: /etc/a\n    permissions: 0644\n    content: |\n      one\n      two\n";
    const user =
      "#cloud-config\npackages:\n  - nginx\nruncmd:\n  - echo hi\nwrite_files:\n  - path: /etc/b\n    content: b\n";
    const out = mergeUserData(catalog, { cloudUser: "debian", sshKeys: [], userData: user });
    const cfg = read(out.text);
    expect(cfg.packages).toEqual(["qemu-guest-agent", "nginx"]);
    expect(cfg.runcmd).toEqual(["systemctl enable --now qemu-guest-agent", "echo hi"]);
    expect(cfg.write_files).toEqual([
      { path: "/etc/a", permissions: 0o644, content: "one\ntwo\n" },
      { path: "/etc/b", content: "b" },
    ]);
    // The octal mode and the comment survive as written; no users key when nothing asked for one.
    expect(out.text).toContain("permissions: 0644");
    expect(out.text).toContain("# from the catalog");
    expect(out.text.match(/#cloud-config/g)).toHaveLength(1);
    expect(cfg.users).toBeUndefined();
  });

  it("merges mappings recursively and lets later scalars win, warning on a change of kind", () => {
    const catalog = "#cloud-config\napt:\n  preserve_sources_list: true\ntimezone: UTC\nbootcmd: [a]\n";
    const user = "#cloud-config\napt:\n  conf: x\ntimezone: Europe/Berlin\nbootcmd: b\n";
    const out = mergeUserData(catalog, { cloudUser: "debian", sshKeys: [], userData: user });
    const cfg = read(out.text);
    expect(cfg.apt).toEqual({ preserve_sources_list: true, conf: "x" });
    expect(cfg.timezone).toBe("Europe/Berlin");
    expect(cfg.bootcmd).toBe("b");
    expect(out.warnings).toEqual(["bootcmd: a value replaces a list set before it"]);
  });

  it("sets the password with chpasswd, unlocks the user and does not expire it", () => {
    const out = mergeUserData(undefined, { cloudUser: "fedora", sshKeys: [KEY], password: "s3cret!" });
    const cfg = read(out.text);
    expect(cfg.chpasswd).toEqual({
      expire: false,
      users: [{ name: "fedora", password: "s3cret!", type: "text" }],
    });
    expect((cfg.users as Record<string, unknown>[])[1]?.lock_passwd).toBe(false);
  });

  it("keeps the author's expire and chpasswd users", () => {
    const user =
      "#cloud-config\nchpasswd:\n  expire: true\n  users:\n    - {name: root, password: x, type: text}\n";
    const cfg = read(
      mergeUserData(undefined, { cloudUser: "debian", sshKeys: [], password: "p", userData: user }).text,
    );
    expect(cfg.chpasswd).toEqual({
      expire: true,
      users: [
        { name: "root", password: "x", type: "text" },
        { name: "debian", password: "p", type: "text" },
      ],
    });
  });

  it("adds keys to an existing users entry of CLOUD_USER without duplicates, and respects an existing list", () => {
    const catalog = `#cloud-config\nusers:\n  - name: debian\n    groups: [adm]\n    ssh_authorized_keys:\n      - ${KEY}\n`;
    const cfg = read(mergeUserData(catalog, { cloudUser: "debian", sshKeys: [KEY, KEY2] }).text);
    expect(cfg.users).toEqual([{ name: "debian", groups: ["adm"], ssh_authorized_keys: [KEY, KEY2] }]);
  });

  it("reads the string form of users", () => {
    const cfg = read(
      mergeUserData("#cloud-config\nusers: default, ops\n", { cloudUser: "ops2", sshKeys: [KEY] }).text,
    );
    expect((cfg.users as unknown[]).slice(0, 2)).toEqual(["default", "ops"]);
    expect((cfg.users as Record<string, unknown>[])[2]?.name).toBe("ops2");
  });

  it("turns a #! script into a file run from runcmd, in its place in the order", () => {
    const script = "#!/bin/bash\nset -e\necho from-catalog > /tmp/x\n";
    const user = "#cloud-config\nruncmd:\n  - echo after\n";
    const cfg = read(mergeUserData(script, { cloudUser: "debian", sshKeys: [], userData: user }).text);
    expect(cfg.write_files).toEqual([
      { path: `${SCRIPTS_DIR}/catalog`, permissions: "0700", owner: "root:root", content: script },
    ]);
    expect(cfg.runcmd).toEqual([[`${SCRIPTS_DIR}/catalog`], "echo after"]);
  });

  it("keeps kinds it cannot merge as parts of a MIME multipart after the merged config", () => {
    const boothook = "#cloud-boothook\necho early\n";
    const out = mergeUserData(boothook, { cloudUser: "debian", sshKeys: [KEY] });
    expect(out.format).toBe("multipart");
    const boundary = /boundary="([^"]+)"/.exec(out.text)?.[1] as string;
    const parts = out.text.split(`--${boundary}`);
    expect(parts).toHaveLength(4); // preamble, config, boothook, closing "--"
    expect(parts[1]).toContain("Content-Type: text/cloud-config");
    expect(parts[1]).toContain(KEY);
    expect(parts[2]).toContain("Content-Type: text/cloud-boothook");
    expect(parts[2]).toContain("echo early");
    expect(parts[3]).toBe("--\n");
  });

  it("names the field, line and column of bad YAML", () => {
    const bad = "#cloud-config\npackages:\n  - a\n - b\n";
    try {
      mergeUserData(undefined, { cloudUser: "debian", sshKeys: [], userData: bad });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(UserDataError);
      const e = error as UserDataError;
      expect(e.field).toBe("userData");
      expect(e.line).toBe(4);
      expect(e.message).toMatch(/^userData:4:\d+: not valid YAML/);
    }
  });

  it("rejects a #cloud-config that is not a mapping, a bad key, a bad user and an unknown header", () => {
    const call = (catalog: string | undefined, extra: object) =>
      mergeUserData(catalog, { cloudUser: "debian", sshKeys: [], ...extra });
    expect(() => call("#cloud-config\n- a\n", {})).toThrow(/^CLOUD_INIT: a #cloud-config must be a mapping/);
    expect(() => call(undefined, { sshKeys: [KEY, "not a key"] })).toThrow(/^sshKeys\[1\]: not an OpenSSH/);
    expect(() => call(undefined, { cloudUser: "Bad User" })).toThrow(/^cloudUser: "Bad User"/);
    expect(() => call(undefined, { password: "a\nb" })).toThrow(/^password:/);
    expect(() => call("hello: world\n", {})).toThrow(/^CLOUD_INIT:1:1: does not start with #cloud-config/);
    expect(() => call("#cloud-config\nusers: {a: 1}\n", { sshKeys: [KEY] })).toThrow(/users must be a list/);
  });

  it("gives an empty but valid #cloud-config when there is nothing to say", () => {
    expect(read(mergeUserData("#cloud-config\n", { cloudUser: "debian", sshKeys: [] }).text)).toEqual({});
  });
});

describe("NoCloud seed", () => {
  it("writes meta-data with the instance id and host name", () => {
    expect(parse(metaData("i-123", "web1"))).toEqual({ "instance-id": "i-123", "local-hostname": "web1" });
    expect(() => metaData("i-1", "Web_1")).toThrow(/^hostname: "Web_1" is not a DNS-1123 label/);
    expect(() => metaData("", "web1")).toThrow(/^instanceId:/);
  });

  it("adds a network-config only when one is given", () => {
    const base = { cloudUser: "debian", sshKeys: [KEY], instanceId: "i-1", hostname: "vm1" };
    expect(buildNoCloudSeed(base).networkConfig).toBeUndefined();
    const seed = buildNoCloudSeed({ ...base, networkConfig: dhcpNetworkConfig("52:54:00:AA:BB:CC") });
    expect(parse(seed.networkConfig as string)).toEqual({
      version: 2,
      ethernets: { nic0: { match: { macaddress: "52:54:00:aa:bb:cc" }, dhcp4: true, dhcp6: false } },
    });
  });
});
