// The build spec: every section's rules, each finding at the line:column of the value (or key) it is
// about, unknown keys refused with what to write instead, the examples valid.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { imgSizeBytes, parseSpec } from "../src/build/spec.ts";
import { tomlPositions } from "../src/build/toml-positions.ts";

const SHA512 = `$6$saltsalt$${"a".repeat(86)}`;
const YESCRYPT = `$y$j9T$abcdefghijklmnop$${"B".repeat(43)}`;
const BASE = '[from_repo]\nsuite = "bookworm"\npackages = ["openssh-server"]\n';

function findings(text: string) {
  return parseSpec(text).findings.map((f) => ({
    at: `${f.line}:${f.column}`,
    code: f.code,
    path: f.path,
    severity: f.severity,
    message: f.message,
    hint: f.hint,
  }));
}

/** The one error of a spec: its code, path and position. */
function only(text: string) {
  const errors = findings(text).filter((f) => f.severity === "error");
  expect(errors, JSON.stringify(errors, null, 1)).toHaveLength(1);
  return errors[0] as ReturnType<typeof findings>[number];
}

describe("spec: TOML and positions", () => {
  it("a syntax error is a finding at smol-toml's line:column", () => {
    const f = only('[from_repo]\nsuite = "bookworm\n');
    expect(f).toMatchObject({ code: "toml.syntax", at: "2:18" });
    expect(f.message).toMatch(/string/i);
  });

  it("maps keys, values, array elements, [[tables]] and inline tables to offsets", () => {
    const text =
      'a = 1\n[t]\nk = [ "x",\n  "y" ] # c\n[[u]]\nn = "p"\n[[u]]\nn = { q = 2 }\n"quoted.key" = true\n';
    const p = tomlPositions(text);
    const at = (path: string) => {
      const o = p.get(path)?.value as number;
      const before = text.slice(0, o);
      return `${before.split("\n").length}:${o - before.lastIndexOf("\n")}`;
    };
    expect(at("a")).toBe("1:5");
    expect(at("t.k[1]")).toBe("4:3");
    expect(at("u[0].n")).toBe("6:5");
    expect(at("u[1].n.q")).toBe("8:11");
    expect(p.has("u[1].quoted.key")).toBe(true);
  });

  it("refuses specs larger than 256 KiB before parsing", () => {
    expect(only(`${BASE}# ${"x".repeat(300 * 1024)}\n`).code).toBe("spec.size");
  });

  it("every example in examples/ is valid", () => {
    const root = new URL("../examples/", import.meta.url).pathname;
    const specs = readdirSync(root).map((d) => join(root, d, "spec.toml"));
    expect(specs.length).toBeGreaterThanOrEqual(3);
    for (const spec of specs) {
      const parsed = parseSpec(readFileSync(spec, "utf8"));
      expect(
        parsed.findings.filter((f) => f.severity === "error"),
        spec,
      ).toEqual([]);
      expect(parsed.spec, spec).toBeDefined();
    }
  });
});

describe("spec: [from_repo]", () => {
  it("is required, with an example in the hint", () => {
    expect(only('[catalog]\nOS_NAME = "x"\nCLOUD_USER = "debian"\n')).toMatchObject({
      code: "spec.required",
      path: "from_repo",
      at: "1:1",
    });
  });

  it("defaults: debian, legacy BIOS on, no packages", () => {
    const spec = parseSpec('[from_repo]\nsuite = "trixie"\n').spec;
    expect(spec?.from_repo).toMatchObject({
      distribution: "debian",
      suite: "trixie",
      legacy_bios: true,
      packages: [],
    });
  });

  it("Debian suites are bookworm and trixie unless a mirror is named", () => {
    const f = only('[from_repo]\nsuite = "bookwrm"\n');
    expect(f).toMatchObject({ code: "suite.unknown", at: "2:9" });
    expect(f.hint).toContain('"bookworm"');
    expect(
      parseSpec('[from_repo]\nsuite = "sid"\nmirror = "http://deb.debian.org/debian"\n').spec,
    ).toBeDefined();
  });

  it("Ubuntu needs a mirror and a keyring", () => {
    expect(only('[from_repo]\ndistribution = "ubuntu"\nsuite = "noble"\n').code).toBe("ubuntu.archive");
    const ok = parseSpec(
      '[from_repo]\ndistribution = "ubuntu"\nsuite = "noble"\nmirror = "http://archive.ubuntu.com/ubuntu"\nkeyring = "/usr/share/keyrings/ubuntu-archive-keyring.gpg"\ncomponents = ["main", "universe"]\n',
    );
    expect(ok.spec?.from_repo.components).toEqual(["main", "universe"]);
  });

  it("package names are Debian's (a comma or a space cannot reach mmdebstrap's --include)", () => {
    const f = only('[from_repo]\nsuite = "bookworm"\npackages = ["curl",\n  "a,b"]\n');
    expect(f).toMatchObject({ code: "package.invalid", path: "from_repo.packages[1]", at: "4:3" });
    expect(
      parseSpec('[from_repo]\nsuite = "bookworm"\npackages = ["curl=7.88.1-10+deb12u5", "g++"]\n').spec,
    ).toBeDefined();
  });

  it("root_passwd: plaintext refused, a crypt hash accepted, MD5 warned about", () => {
    const f = only(`${BASE}root_passwd = "hunter2"\n`);
    expect(f).toMatchObject({ code: "password.plaintext", at: "4:15" });
    expect(f.hint).toContain("mkpasswd");
    expect(only(`${BASE}root_passwd = "$6$short"\n`).code).toBe("password.hash");
    for (const hash of [SHA512, YESCRYPT, "!", "*", `$2b$12$${"a".repeat(53)}`])
      expect(parseSpec(`${BASE}root_passwd = '${hash}'\n`).spec).toBeDefined();
    const md5 = findings(`${BASE}root_passwd = '$1$xyz$RdLyKTL32WEvK3lg8CXID0'\n`);
    expect(md5).toEqual([expect.objectContaining({ severity: "warning", code: "password.weak" })]);
  });

  it("version is one line; upgrade_img an image reference; legacy_bios a boolean", () => {
    expect(only(`${BASE}version = "a\\nb"\n`).code).toBe("text.line");
    expect(only(`${BASE}upgrade_img = "Not A Ref"\n`).code).toBe("reference.invalid");
    expect(only(`${BASE}legacy_bios = "yes"\n`)).toMatchObject({
      code: "spec.invalid_type",
      path: "from_repo.legacy_bios",
    });
  });

  it("kbimg's keys are refused with what to write instead", () => {
    const f = findings(
      `${BASE}rpmlist = ["kernel"]\nrepo_path = "/etc/yum.repos.d/x.repo"\nagent_path = "./os-agent"\n`,
    );
    expect(f.map((x) => [x.code, x.path, x.at])).toEqual([
      ["spec.unknown_key", "from_repo.rpmlist", "4:1"],
      ["spec.unknown_key", "from_repo.repo_path", "5:1"],
      ["spec.unknown_key", "from_repo.agent_path", "6:1"],
    ]);
    expect(f[0]?.hint).toContain('"packages"');
    expect(only(`${BASE}mirorr = "http://x"\n`).hint).toBe('did you mean "mirror"?');
    expect(only(`${BASE}[dm_verity]\nefi_key = "x"\n`).hint).toContain("dm-verity");
  });
});

describe("spec: [[users]]", () => {
  it("names, hashes and groups are checked; root and duplicates refused", () => {
    expect(only(`${BASE}[[users]]\nname = "Ops"\n`)).toMatchObject({
      code: "name.invalid",
      path: "users[0].name",
      at: "5:8",
    });
    expect(only(`${BASE}[[users]]\nname = "ops"\npasswd = "secret"\n`)).toMatchObject({
      code: "password.plaintext",
      path: "users[0].passwd",
    });
    expect(only(`${BASE}[[users]]\nname = "ops"\ngroups = ["sudo", "x:y"]\n`)).toMatchObject({
      path: "users[0].groups[1]",
      at: "6:19",
    });
    expect(only(`${BASE}[[users]]\nname = "root"\n`).code).toBe("user.root");
    expect(only(`${BASE}[[users]]\nname = "ops"\n[[users]]\nname = "ops"\n`)).toMatchObject({
      code: "spec.duplicate",
      path: "users[1].name",
      at: "7:8",
    });
    expect(only(`${BASE}[[users]]\nname = "ops"\nssh_authorized_keys = ["not a key"]\n`).code).toBe(
      "ssh_key.invalid",
    );
  });

  it("a full user", () => {
    const spec = parseSpec(
      `${BASE}[[users]]\nname = "ops"\npasswd = '${YESCRYPT}'\nprimary_group = "staff"\ngroups = ["sudo"]\nshell = "/bin/bash"\n`,
    ).spec;
    expect(spec?.users[0]).toMatchObject({
      name: "ops",
      primary_group: "staff",
      groups: ["sudo"],
      shell: "/bin/bash",
    });
  });
});

describe("spec: [[copy_files]]", () => {
  const copy = (fields: string) => `${BASE}[[copy_files]]\n${fields}\n`;
  it("src stays under the spec's directory; dst is absolute without ..", () => {
    expect(only(copy('src = "../secret"\ndst = "/etc/x"'))).toMatchObject({
      code: "path.escape",
      path: "copy_files[0].src",
      at: "5:7",
    });
    expect(only(copy('src = "/etc/passwd"\ndst = "/etc/x"')).code).toBe("path.absolute");
    expect(only(copy('src = "a"\ndst = "etc/x"')).code).toBe("path.relative");
    expect(only(copy('src = "a"\ndst = "/etc/../../x"')).code).toBe("path.escape");
    expect(only(copy('src = "a"\ndst = "/"')).code).toBe("path.root");
    expect(only(copy('src = "a"\ndst = "/etc/a\\nb"')).code).toBe("path.control");
  });

  it("mode as an octal string or TOML octal; owner as user[:group]", () => {
    expect(only(copy('src = "a"\ndst = "/x"\nmode = "0999"')).code).toBe("mode.invalid");
    expect(only(copy('src = "a"\ndst = "/x"\nmode = 70000')).path).toBe("copy_files[0].mode");
    expect(only(copy('src = "a"\ndst = "/x"\nowner = "a b"')).code).toBe("owner.invalid");
    const spec = parseSpec(copy('src = "a"\ndst = "/x"\nmode = 0o640\nowner = "107:107"')).spec;
    expect(spec?.copy_files[0]).toMatchObject({ mode: 0o640, owner: "107:107" });
    expect(parseSpec(copy('src = "a"\ndst = "/x/"\nmode = "0755"\nowner = "ops"')).spec).toBeDefined();
  });

  it("the same destination twice is refused; create_dir is explained", () => {
    expect(only(`${copy('src = "a"\ndst = "/x"')}[[copy_files]]\nsrc = "b"\ndst = "/x"\n`).code).toBe(
      "spec.duplicate",
    );
    expect(only(copy('src = "a"\ndst = "/x"\ncreate_dir = "/x"')).hint).toContain("created automatically");
  });
});

describe("spec: services, scripts, disk, persist, boot loader", () => {
  it("[systemd_service] names are unit names", () => {
    expect(only(`${BASE}[systemd_service]\nname = ["ok", "bad name"]\n`)).toMatchObject({
      code: "unit.invalid",
      path: "systemd_service.name[1]",
    });
    expect(only(`${BASE}[systemd_service]\nname = []\n`).path).toBe("systemd_service.name");
  });

  it("[chroot_script] path is relative; rm defaults to true", () => {
    expect(only(`${BASE}[chroot_script]\npath = "/tmp/x.sh"\n`).code).toBe("path.absolute");
    expect(parseSpec(`${BASE}[chroot_script]\npath = "x.sh"\n`).spec?.chroot_script).toEqual({
      path: "x.sh",
      rm: true,
    });
  });

  it("[disk_partition]: root in MiB (at least 256), img_size in GB or a quantity, big enough", () => {
    expect(only(`${BASE}[disk_partition]\nroot = 100\n`).path).toBe("disk_partition.root");
    expect(only(`${BASE}[disk_partition]\nroot = 3000\nimg_size = 2\n`).code).toBe("disk.small");
    expect(only(`${BASE}[disk_partition]\nimg_size = "20 GB"\n`).code).toBe("size.invalid");
    expect(imgSizeBytes(20)).toBe(20e9);
    expect(imgSizeBytes("8Gi")).toBe(8 * 2 ** 30);
  });

  it("[persist_mkdir] names are relative without ..", () => {
    expect(only(`${BASE}[persist_mkdir]\nname = ["ok", "../x"]\n`)).toMatchObject({
      code: "path.escape",
      path: "persist_mkdir.name[1]",
    });
  });

  it("[grub] / [bootloader] passwd is a crypt hash; not both", () => {
    expect(only(`${BASE}[grub]\npasswd = "foo"\n`).code).toBe("password.plaintext");
    const renamed = findings(`${BASE}[grub]\npassword = '${SHA512}'\n`).find(
      (f) => f.code === "spec.unknown_key",
    );
    expect(renamed?.hint).toContain('"passwd"');
    expect(only(`${BASE}[grub]\npasswd = '${SHA512}'\n[bootloader]\npasswd = '${SHA512}'\n`).code).toBe(
      "bootloader.twice",
    );
  });
});

describe("spec: [pxe_config]", () => {
  const pxe = (fields: string) =>
    `${BASE}[pxe_config]\nserver_ip = "192.168.1.50"\ndisk = "/dev/vda"\n${fields}\n`;
  it("static addressing needs every field, in one subnet", () => {
    expect(parseSpec(pxe("dhcp = true")).spec).toBeDefined();
    const missing = findings(pxe('local_ip = "192.168.1.10"')).filter((f) => f.code === "pxe.static");
    expect(missing.map((f) => f.message)).toEqual([
      "pxe_config.netmask is required when dhcp = false",
      "pxe_config.net_name is required when dhcp = false",
      "pxe_config.route_ip is required when dhcp = false",
    ]);
    expect(
      only(
        pxe('local_ip = "192.168.1.10"\nnetmask = "255.255.255.0"\nnet_name = "eth0"\nroute_ip = "10.0.0.1"'),
      ).code,
    ).toBe("pxe.route");
  });

  it("addresses, masks, disks, names", () => {
    expect(only(pxe('dhcp = true\nlocal_ip = "192.168.1.256"'))).toMatchObject({
      code: "ipv4.invalid",
      path: "pxe_config.local_ip",
    });
    expect(only(pxe('dhcp = true\nnetmask = "255.0.255.0"')).code).toBe("netmask.invalid");
    expect(only(pxe('dhcp = true\nnet_name = "eth0; reboot"')).code).toBe("pxe.net_name");
    expect(only(pxe('dhcp = true\nrootfs_name = "../x.tar"')).code).toBe("pxe.rootfs_name");
    expect(only(`${BASE}[pxe_config]\nserver_ip = "192.168.1.50"\ndisk = "vda"\ndhcp = true\n`).code).toBe(
      "pxe.disk",
    );
  });

  it("server_port: a TCP port, 80 when absent", () => {
    expect(parseSpec(pxe("dhcp = true")).spec?.pxe_config?.server_port).toBe(80);
    expect(parseSpec(pxe("dhcp = true\nserver_port = 8080")).spec?.pxe_config?.server_port).toBe(8080);
    expect(parseSpec(pxe("dhcp = true\nserver_port = 65535")).spec?.pxe_config?.server_port).toBe(65535);
    for (const bad of ["0", "65536", "-1", "80.5"])
      expect(only(pxe(`dhcp = true\nserver_port = ${bad}`)), bad).toMatchObject({
        code: "pxe.server_port",
        path: "pxe_config.server_port",
        at: "8:15",
        message: `server_port ${Number(bad)} is not a TCP port`,
        hint: "a whole number from 1 to 65535 (default 80)",
      });
    expect(only(pxe('dhcp = true\nserver_port = "8080"'))).toMatchObject({
      code: "spec.invalid_type",
      path: "pxe_config.server_port",
      at: "8:15",
    });
  });
});

describe("spec: [admin_container] and [catalog]", () => {
  it("admin container fields", () => {
    expect(only(`${BASE}[admin_container]\nimg_name = "Admin:1"\n`).code).toBe("reference.invalid");
    expect(only(`${BASE}[admin_container]\nhostshell = "/bin/sh"\n`).code).toBe("path.absolute");
    expect(only(`${BASE}[admin_container]\nauthorized_keys = ["ssh-ed25519 AAAA\\nevil"]\n`).code).toBe(
      "ssh_key.invalid",
    );
  });

  it("catalog fields use the catalog's own rules", () => {
    const cat = (fields: string) => `${BASE}[catalog]\nOS_NAME = "Demo"\nCLOUD_USER = "debian"\n${fields}\n`;
    expect(only(cat('MIN_MEMORY = "512m"'))).toMatchObject({
      code: "quantity.implausible",
      path: "catalog.MIN_MEMORY",
      at: "7:14",
    });
    expect(only(cat('FIRMWARE_TYPE = "uefi"')).hint).toContain('"efi"');
    expect(only(cat('OS_IMAGE_URL = "ftp://x/y.qcow2"')).code).toBe("url.scheme");
    expect(only(cat("MIN_VCPU = 0")).path).toBe("catalog.MIN_VCPU");
    expect(only(`${BASE}[catalog]\nOS_NAME = "Demo"\n`).path).toBe("catalog.CLOUD_USER");
    const spec = parseSpec(cat('MIN_VCPU = 2\nMIN_STORAGE = "10G"\nFIRMWARE_TYPE = "efi"')).spec;
    expect(spec?.catalog).toMatchObject({ MIN_VCPU: "2", MIN_STORAGE: "10G", FIRMWARE_TYPE: "efi" });
  });
});
