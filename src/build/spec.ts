// The build spec: a TOML file modelled on kbimg's (from_repo, users, copy_files, systemd_service,
// chroot_script, disk_partition, persist_mkdir, grub, pxe_config, admin_container) plus [catalog] for the
// entry the build produces. Pure: text in, a typed spec and findings (each at a line:column of the TOML)
// out. Unknown keys are errors; passwords are crypt hashes only; every string that ends up in a file of the
// image or on a command line is checked here for what it may contain.
import { parse as parseToml, TomlError } from "smol-toml";
import { type ZodIssue, z } from "zod";
import {
  closest,
  type FieldResult,
  parseCloudUser,
  parseContainerDiskRepo,
  parseContainerDiskTag,
  parseFirmware,
  parseImageUrl,
  parseOsName,
  parseSizeField,
  parseVcpu,
} from "../catalog/fields.ts";
import { byPosition, type Finding, FindingSink } from "../catalog/findings.ts";
import { fileLocator } from "../catalog/positions.ts";
import { parseQuantity } from "../units/quantity.ts";
import { offsetOf, pathOf, type TomlPositions, tomlPositions } from "./toml-positions.ts";

export const BUILD_KINDS = ["vm-img", "pxe-img", "upgrade-img", "container-disk", "admin-container"] as const;
export type BuildKind = (typeof BUILD_KINDS)[number];

export const DEBIAN_SUITES = ["bookworm", "trixie"] as const;
export const DEFAULT_MIRRORS = {
  debian: "http://deb.debian.org/debian",
  ubuntu: "http://archive.ubuntu.com/ubuntu",
} as const;

/** Larger specs are refused before parsing. */
export const MAX_SPEC_BYTES = 256 * 1024;

// --- Checks shared by several fields ---------------------------------------------------------------------

type Check = (value: string) => { message: string; hint?: string; code: string } | undefined;

/** A zod string refined by a check; the issue carries the check's code and hint for the finding. */
function checked(check: Check) {
  return z.string().superRefine((value, ctx) => {
    const problem = check(value);
    if (problem)
      ctx.addIssue({
        code: "custom",
        message: problem.message,
        params: { code: problem.code, hint: problem.hint },
      });
  });
}

const CRYPT_PATTERNS: readonly RegExp[] = [
  /^\$(1|5|6)\$(rounds=\d{1,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{22,86}$/,
  /^\$y\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{1,86}\$[./0-9A-Za-z]{43}$/,
  /^\$gy\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{1,86}\$[./0-9A-Za-z]{43}$/,
  /^\$2[abxy]\$\d{2}\$[./0-9A-Za-z]{53}$/,
];

/** A password as /etc/shadow holds it: a crypt(5) hash, or "!"/"*" for no password login. */
export const cryptHash: Check = (value) => {
  if (value === "!" || value === "*") return undefined;
  if (CRYPT_PATTERNS.some((p) => p.test(value))) return undefined;
  const looksLikeHash = value.startsWith("$");
  return {
    code: looksLikeHash ? "password.hash" : "password.plaintext",
    message: looksLikeHash
      ? "is not a crypt(5) hash osimg knows ($y$ yescrypt, $6$/$5$ SHA-crypt, $2b$ bcrypt, $1$ MD5)"
      : "is not a crypt hash: plaintext passwords are refused (they would be stored in the spec and the image's history)",
    hint: "generate one with: mkpasswd -m yescrypt   or   openssl passwd -6",
  };
};

const weakCrypt = (value: string) => value.startsWith("$1$");

/** Linux user and group names as Debian's adduser accepts them. */
export const accountName: Check = (value) =>
  /^[a-z_][a-z0-9_-]{0,31}$/.test(value)
    ? undefined
    : {
        code: "name.invalid",
        message: `"${printable(value)}" is not a valid user or group name`,
        hint: "start with a lower-case letter or _, then lower-case letters, digits, _ or -, at most 32 characters",
      };

const packageName: Check = (value) =>
  /^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$/.test(value)
    ? undefined
    : {
        code: "package.invalid",
        message: `"${printable(value)}" is not a Debian package name`,
        hint: "lower-case letters, digits, + - and ., optionally =VERSION (e.g. openssh-server or curl=7.88.1-10)",
      };

/** A path inside the image: absolute, no "." or ".." segments, no NUL or line breaks. */
export const imagePath: Check = (value) => {
  if (!value.startsWith("/"))
    return {
      code: "path.relative",
      message: `"${printable(value)}" is not absolute`,
      hint: 'start it with "/"',
    };
  return pathSegmentsProblem(value.slice(1), true);
};

/** A path relative to a root (the spec's directory, the persist partition). */
export const relativePath: Check = (value) => {
  if (value.startsWith("/"))
    return {
      code: "path.absolute",
      message: `"${printable(value)}" is absolute`,
      hint: "write it relative to the directory of the spec file",
    };
  return pathSegmentsProblem(value, false);
};

function pathSegmentsProblem(rest: string, allowTrailingSlash: boolean) {
  if (/[\0\r\n]/.test(rest))
    return { code: "path.control", message: "contains a NUL or a line break", hint: "remove it" };
  const segments = rest.split("/");
  if (allowTrailingSlash && segments.at(-1) === "") segments.pop();
  if (segments.length === 0 || (segments.length === 1 && segments[0] === "")) {
    return allowTrailingSlash
      ? {
          code: "path.root",
          message: "names the root directory itself",
          hint: "name a file or directory below /",
        }
      : { code: "path.empty", message: "is empty", hint: "name a file or directory" };
  }
  for (const s of segments) {
    if (s === "..")
      return {
        code: "path.escape",
        message: 'contains ".." (paths may not leave their root)',
        hint: "write the path without ..",
      };
    if (s === "." || s === "")
      return {
        code: "path.segment",
        message: 'contains an empty or "." segment',
        hint: "remove the extra / or .",
      };
  }
  return undefined;
}

const ipv4: Check = (value) => {
  const parts = value.split(".");
  const ok = parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
  return ok
    ? undefined
    : {
        code: "ipv4.invalid",
        message: `"${printable(value)}" is not an IPv4 address`,
        hint: "write it as four numbers 0-255, e.g. 192.168.122.10",
      };
};

export function ipv4ToNumber(address: string): number {
  return address.split(".").reduce((n, p) => n * 256 + Number(p), 0);
}

const netmask: Check = (value) => {
  const bad = ipv4(value);
  if (bad) return { ...bad, code: "netmask.invalid" };
  const n = ipv4ToNumber(value);
  const inverted = ~n >>> 0;
  // A mask is ones then zeros: its complement plus one is a power of two.
  if ((inverted & (inverted + 1)) !== 0 || n === 0)
    return {
      code: "netmask.invalid",
      message: `"${value}" is not a netmask (ones followed by zeros)`,
      hint: "e.g. 255.255.255.0",
    };
  return undefined;
};

const singleLine: Check = (value) =>
  /[\0\r\n]/.test(value) || value.trim() === ""
    ? { code: "text.line", message: "must be one non-empty line", hint: "remove line breaks" }
    : undefined;

const unitName: Check = (value) =>
  /^[A-Za-z0-9:_.\\@-]{1,250}$/.test(value)
    ? undefined
    : {
        code: "unit.invalid",
        message: `"${printable(value)}" is not a systemd unit name`,
        hint: 'letters, digits and ":_.\\@-", e.g. "containerd" or "getty@ttyS0.service"',
      };

/** OCI image references as `docker`/`skopeo` take them: [registry/]repository[:tag]. */
export const imageReference: Check = (value) => {
  const match = /^(?<repo>[^:@\s]+(?::\d+)?(?:\/[^:@\s]+)*)(?::(?<tag>[\w][\w.-]{0,127}))?$/.exec(value);
  const repo = match?.groups?.repo;
  if (!repo || parseContainerDiskRepo(repo).issues.length > 0)
    return {
      code: "reference.invalid",
      message: `"${printable(value)}" is not an image reference`,
      hint: 'write it like "registry.example.com/os/debian:12" (lower-case repository, optional :tag)',
    };
  return undefined;
};

const sshKey: Check = (value) =>
  /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n\0]*)?$/.test(
    value,
  )
    ? undefined
    : {
        code: "ssh_key.invalid",
        message: "is not an OpenSSH public key line",
        hint: 'paste one line of a .pub file ("ssh-ed25519 AAAA… comment")',
      };

/** Values shown in messages: control characters escaped, long values cut. */
export function printable(value: string): string {
  const escaped = JSON.stringify(value).slice(1, -1);
  return escaped.length > 60 ? `${escaped.slice(0, 57)}...` : escaped;
}

function fromField<T>(parse: (text: string) => FieldResult<T>): Check {
  return (value) => {
    const error = parse(value).issues.find((i) => i.severity === "error");
    return error
      ? { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) }
      : undefined;
  };
}

// --- The schema ----------------------------------------------------------------------------------------

const Mode = z.union([
  z.number().int().min(0).max(0o7777),
  checked((v) =>
    /^0?[0-7]{3,4}$/.test(v) && Number.parseInt(v, 8) <= 0o7777
      ? undefined
      : {
          code: "mode.invalid",
          message: `"${printable(v)}" is not an octal file mode`,
          hint: 'write it as a string like "0644" or a TOML octal like 0o644',
        },
  ),
]);

const Owner = checked((v) => {
  const parts = v.split(":");
  const ok = parts.length <= 2 && parts.every((p) => /^\d{1,10}$/.test(p) || accountName(p) === undefined);
  return ok
    ? undefined
    : {
        code: "owner.invalid",
        message: `"${printable(v)}" is not USER[:GROUP]`,
        hint: 'names or numbers, e.g. "root:root", "ops" or "107:107"',
      };
});

export const FromRepo = z.strictObject({
  distribution: z.enum(["debian", "ubuntu"]).default("debian"),
  suite: checked((v) =>
    /^[a-z][a-z0-9-]{1,31}$/.test(v)
      ? undefined
      : {
          code: "suite.invalid",
          message: `"${printable(v)}" is not a suite name`,
          hint: "e.g. bookworm, trixie, noble",
        },
  ),
  mirror: checked((v) => {
    if (/\s/.test(v)) return { code: "mirror.invalid", message: "contains white space" };
    try {
      const url = new URL(v);
      if (url.protocol === "http:" || url.protocol === "https:" || url.protocol === "file:") return undefined;
    } catch {}
    return {
      code: "mirror.invalid",
      message: `"${printable(v)}" is not an http(s) or file URL`,
      hint: "e.g. http://deb.debian.org/debian",
    };
  }).optional(),
  keyring: checked(relativeOrAbsoluteFile).optional(),
  components: z
    .array(
      checked((v) =>
        /^[a-z0-9-]{1,32}$/.test(v)
          ? undefined
          : {
              code: "component.invalid",
              message: `"${printable(v)}" is not an archive component`,
              hint: "e.g. main, contrib, universe",
            },
      ),
    )
    .optional(),
  packages: z.array(checked(packageName)).default([]),
  version: checked(singleLine).optional(),
  root_passwd: checked(cryptHash).optional(),
  legacy_bios: z.boolean().default(true),
  upgrade_img: checked(imageReference).optional(),
});
export type FromRepo = z.infer<typeof FromRepo>;

function relativeOrAbsoluteFile(value: string) {
  if (/[\0\r\n]/.test(value))
    return { code: "path.control", message: "contains a NUL or a line break", hint: "remove it" };
  if (value.trim() === "") return { code: "path.empty", message: "is empty", hint: "name a file" };
  return undefined;
}

export const User = z.strictObject({
  name: checked(accountName),
  passwd: checked(cryptHash).optional(),
  primary_group: checked(accountName).optional(),
  groups: z.array(checked(accountName)).default([]),
  shell: checked(imagePath).optional(),
  ssh_authorized_keys: z.array(checked(sshKey)).default([]),
});
export type User = z.infer<typeof User>;

export const CopyFile = z.strictObject({
  src: checked(relativePath),
  dst: checked(imagePath),
  mode: Mode.optional(),
  owner: Owner.optional(),
});
export type CopyFile = z.infer<typeof CopyFile>;

export const SystemdService = z.strictObject({ name: z.array(checked(unitName)).min(1) });

export const ChrootScript = z.strictObject({
  path: checked(relativePath),
  rm: z.boolean().default(true),
});

const Size = z.union([
  z.number().int().positive(),
  checked((v) => {
    const q = parseQuantity(v);
    return q.ok
      ? undefined
      : { code: "size.invalid", message: q.message, ...(q.hint ? { hint: q.hint } : {}) };
  }),
]);

export const DiskPartition = z.strictObject({
  /** MiB. */
  root: z
    .number()
    .int()
    .min(256)
    .max(1024 * 1024)
    .default(2560),
  /** GB (10^9 bytes) as a number, or a quantity such as "20Gi". */
  img_size: Size.optional(),
});

export const PersistMkdir = z.strictObject({ name: z.array(checked(relativePath)).min(1) });

export const Bootloader = z.strictObject({ passwd: checked(cryptHash) });

export const PxeConfig = z.strictObject({
  dhcp: z.boolean().default(false),
  rootfs_name: checked((v) =>
    /^[A-Za-z0-9._-]{1,128}$/.test(v) && v !== "." && v !== ".."
      ? undefined
      : {
          code: "pxe.rootfs_name",
          message: `"${printable(v)}" is not a plain file name`,
          hint: "letters, digits, . _ and -",
        },
  ).default("rootfs.tar"),
  disk: checked((v) =>
    /^\/dev\/[A-Za-z0-9_-]+(\/[A-Za-z0-9_.:-]+)*$/.test(v) && !v.includes("/..")
      ? undefined
      : {
          code: "pxe.disk",
          message: `"${printable(v)}" is not a disk device path`,
          hint: "e.g. /dev/vda or /dev/disk/by-id/…",
        },
  ),
  server_ip: checked(ipv4),
  /** The HTTP port the root filesystem tar is served on (in the URL only when it is not 80). */
  server_port: z
    .number()
    .superRefine((v, ctx) => {
      if (!Number.isInteger(v) || v < 1 || v > 65535)
        ctx.addIssue({
          code: "custom",
          message: `server_port ${v} is not a TCP port`,
          params: { code: "pxe.server_port", hint: "a whole number from 1 to 65535 (default 80)" },
        });
    })
    .default(80),
  route_ip: checked(ipv4).optional(),
  local_ip: checked(ipv4).optional(),
  netmask: checked(netmask).optional(),
  net_name: checked((v) =>
    /^[A-Za-z0-9_.:-]{1,15}$/.test(v)
      ? undefined
      : {
          code: "pxe.net_name",
          message: `"${printable(v)}" is not a network interface name`,
          hint: "at most 15 letters, digits, _ . : -",
        },
  ).optional(),
});
export type PxeConfig = z.infer<typeof PxeConfig>;

export const AdminContainer = z.strictObject({
  img_name: checked(imageReference).optional(),
  hostshell: checked(relativePath).optional(),
  authorized_keys: z.array(checked(sshKey)).default([]),
  packages: z.array(checked(packageName)).default([]),
});

const quoted = <T>(parse: (text: string) => FieldResult<T>) => checked(fromField(parse));
const stringOrNumber = (check: Check) =>
  z.union([z.number().int().positive().transform(String), checked(check)]);

export const CatalogSection = z.strictObject({
  OS_NAME: quoted(parseOsName),
  CLOUD_USER: quoted(parseCloudUser),
  OS_IMAGE_URL: quoted((t) => parseImageUrl("OS_IMAGE_URL", t)).optional(),
  MIN_MEMORY: quoted((t) => parseSizeField("MIN_MEMORY", t)).optional(),
  MIN_VCPU: stringOrNumber(fromField(parseVcpu)).optional(),
  MIN_STORAGE: quoted((t) => parseSizeField("MIN_STORAGE", t)).optional(),
  FIRMWARE_TYPE: quoted(parseFirmware).default("bios"),
  OS_FAMILY_ID: checked(singleLine).optional(),
  OS_CONTAINERDISK_REPO: quoted(parseContainerDiskRepo).optional(),
  OS_CONTAINERDISK_TAG: quoted(parseContainerDiskTag).optional(),
});
export type CatalogSection = z.infer<typeof CatalogSection>;

export const BuildSpec = z.strictObject({
  from_repo: FromRepo,
  users: z.array(User).default([]),
  copy_files: z.array(CopyFile).default([]),
  systemd_service: SystemdService.optional(),
  chroot_script: ChrootScript.optional(),
  disk_partition: DiskPartition.optional(),
  persist_mkdir: PersistMkdir.optional(),
  grub: Bootloader.optional(),
  bootloader: Bootloader.optional(),
  pxe_config: PxeConfig.optional(),
  admin_container: AdminContainer.optional(),
  catalog: CatalogSection.optional(),
});
export type BuildSpec = z.infer<typeof BuildSpec>;

/** Keys of kbimg's format that osimg replaces, with what to write instead. */
const RENAMED: Record<string, string> = {
  "from_repo.rpmlist": 'osimg installs Debian packages: write them in "packages"',
  "from_repo.repo_path": 'name the archive with "mirror" (and "keyring" for Ubuntu or other archives)',
  "from_repo.agent_path": "osimg images have no os-agent; copy binaries with [[copy_files]]",
  "copy_files.create_dir": "parent directories of dst are created automatically",
  "grub.password": 'the key is "passwd" (a crypt hash)',
  dm_verity: "dm-verity images are not built by osimg",
};

// --- Parsing -------------------------------------------------------------------------------------------

export interface ParsedSpec {
  spec?: BuildSpec;
  findings: Finding[];
  /** Positions of keys and values, for findings raised later (plan, run) about a field. */
  positions: TomlPositions;
  text: string;
}

/** Adds a finding about `path` (a pathOf() string) of a parsed spec. */
export function findingAt(
  parsed: Pick<ParsedSpec, "positions" | "text">,
  sink: FindingSink,
  input: {
    severity?: Finding["severity"];
    code: string;
    path: string;
    message: string;
    hint?: string | undefined;
  },
  at: "key" | "value" = "value",
): void {
  sink.add(
    {
      severity: input.severity ?? "error",
      code: input.code,
      path: input.path,
      message: input.message,
      hint: input.hint,
    },
    offsetOf(parsed.positions, input.path, at),
    fileLocator(parsed.text),
  );
}

export function parseSpec(text: string): ParsedSpec {
  const sink = new FindingSink();
  const locate = fileLocator(text);
  const empty: ParsedSpec = { findings: sink.findings, positions: new Map(), text };
  if (Buffer.byteLength(text) > MAX_SPEC_BYTES) {
    sink.add(
      {
        severity: "error",
        code: "spec.size",
        path: "",
        message: `the spec is larger than ${MAX_SPEC_BYTES / 1024} KiB`,
        hint: "keep file contents in files named by [[copy_files]]",
      },
      0,
      locate,
    );
    return empty;
  }
  let data: unknown;
  try {
    data = parseToml(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const finding: Finding = {
        severity: "error",
        code: "toml.syntax",
        path: "",
        line: Math.max(1, error.line),
        column: Math.max(1, error.column),
        message: error.message.split("\n")[0]?.replace(/^Invalid TOML document: /, "") ?? "invalid TOML",
        hint: "see https://toml.io/en/v1.0.0",
      };
      sink.findings.push(finding);
      return empty;
    }
    throw error;
  }
  const parsed: ParsedSpec = { findings: sink.findings, positions: tomlPositions(text), text };
  const result = BuildSpec.safeParse(data);
  if (!result.success) {
    for (const issue of result.error.issues) addIssue(parsed, sink, issue, data);
    sink.findings.sort(byPosition);
    return parsed;
  }
  const spec = result.data;
  crossChecks(parsed, sink, spec);
  sink.findings.sort(byPosition);
  if (!sink.findings.some((f) => f.severity === "error")) parsed.spec = spec;
  return parsed;
}

function addIssue(parsed: ParsedSpec, sink: FindingSink, issue: ZodIssue, data: unknown): void {
  const path = pathOf(issue.path as (string | number)[]);
  const params = (issue as { params?: { code?: string; hint?: string } }).params;
  if (issue.code === "unrecognized_keys") {
    for (const key of issue.keys) {
      const full = path === "" ? key : `${path}.${key}`;
      const generic = full.replace(/\[\d+\]/g, "");
      const known = knownKeys(issue.path as (string | number)[]);
      const suggestion = closest(key, known);
      findingAt(
        parsed,
        sink,
        {
          code: "spec.unknown_key",
          path: full,
          message: `unknown key "${key}"${path ? ` in [${path}]` : ""}`,
          hint:
            RENAMED[generic] ??
            (suggestion ? `did you mean "${suggestion}"?` : `known keys: ${known.join(", ")}`),
        },
        "key",
      );
    }
    return;
  }
  if (issue.code === "invalid_type" && valueAt(data, issue.path as (string | number)[]) === undefined) {
    findingAt(parsed, sink, {
      code: "spec.required",
      path,
      message: `${path || "the spec"} is required`,
      hint: requiredHint(path),
    });
    return;
  }
  // Checks say what is wrong ("is not absolute"); the finding names the field it is about.
  const field = String(issue.path.filter((p) => typeof p === "string").at(-1) ?? "value");
  const index = issue.path.at(-1);
  const subject = typeof index === "number" ? `${field}[${index}]` : field;
  findingAt(parsed, sink, {
    code: params?.code ?? `spec.${issue.code}`,
    path,
    message: /^(is|contains|must|names) /.test(issue.message) ? `${subject} ${issue.message}` : issue.message,
    hint: params?.hint,
  });
}

function requiredHint(path: string): string | undefined {
  if (path === "from_repo") return '[from_repo] names what to install: suite = "bookworm", packages = [...]';
  if (path === "from_repo.suite") return 'e.g. suite = "bookworm" (Debian 12) or "trixie" (Debian 13)';
  return undefined;
}

function valueAt(data: unknown, path: readonly (string | number)[]): unknown {
  let v = data;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/** The keys the schema allows at a path, for "did you mean". */
function knownKeys(path: readonly (string | number)[]): string[] {
  let schema: z.ZodType = BuildSpec;
  for (const p of path) {
    schema = unwrap(schema);
    if (typeof p === "number" && schema instanceof z.ZodArray) schema = schema.element as z.ZodType;
    else if (typeof p === "string" && schema instanceof z.ZodObject) schema = schema.shape[p] as z.ZodType;
  }
  schema = unwrap(schema);
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodOptional || s instanceof z.ZodDefault) s = s.unwrap() as z.ZodType;
  if (s instanceof z.ZodArray && !(schema instanceof z.ZodArray)) return s;
  return s;
}

/** Rules between fields: the distribution's needs, duplicates, pxe networking, the bootloader password. */
function crossChecks(parsed: ParsedSpec, sink: FindingSink, spec: BuildSpec): void {
  const add = (
    path: string,
    code: string,
    message: string,
    hint?: string,
    severity: Finding["severity"] = "error",
  ) => findingAt(parsed, sink, { severity, code, path, message, hint });
  const repo = spec.from_repo;
  if (
    repo.distribution === "debian" &&
    !(DEBIAN_SUITES as readonly string[]).includes(repo.suite) &&
    !repo.mirror
  )
    add(
      "from_repo.suite",
      "suite.unknown",
      `Debian suite "${repo.suite}" is not one osimg builds (${DEBIAN_SUITES.join(", ")})`,
      closest(repo.suite, DEBIAN_SUITES)
        ? `did you mean "${closest(repo.suite, DEBIAN_SUITES)}"?`
        : "or name a mirror that has it",
    );
  if (repo.distribution === "ubuntu" && (!repo.mirror || !repo.keyring))
    add(
      "from_repo",
      "ubuntu.archive",
      "Ubuntu needs a mirror and a keyring",
      'e.g. mirror = "http://archive.ubuntu.com/ubuntu", keyring = "/usr/share/keyrings/ubuntu-archive-keyring.gpg"',
    );
  if (repo.root_passwd && weakCrypt(repo.root_passwd))
    add(
      "from_repo.root_passwd",
      "password.weak",
      "is an MD5 crypt hash, which is easy to crack",
      "use yescrypt ($y$) or SHA-512 ($6$)",
      "warning",
    );
  duplicates(spec.from_repo.packages, (i) => `from_repo.packages[${i}]`, "package", add);
  duplicates(
    spec.users.map((u) => u.name),
    (i) => `users[${i}].name`,
    "user",
    add,
  );
  duplicates(
    spec.copy_files.map((c) => c.dst),
    (i) => `copy_files[${i}].dst`,
    "destination",
    add,
  );
  for (const [i, u] of spec.users.entries()) {
    if (u.name === "root")
      add(
        `users[${i}].name`,
        "user.root",
        "root exists in every image",
        "set root's password with from_repo.root_passwd",
      );
    if (u.passwd && weakCrypt(u.passwd))
      add(
        `users[${i}].passwd`,
        "password.weak",
        "is an MD5 crypt hash, which is easy to crack",
        "use yescrypt ($y$) or SHA-512 ($6$)",
        "warning",
      );
  }
  if (spec.grub && spec.bootloader)
    add(
      "bootloader",
      "bootloader.twice",
      "[grub] and [bootloader] both set a boot loader password",
      "keep one of them",
    );
  if (spec.persist_mkdir)
    duplicates(spec.persist_mkdir.name, (i) => `persist_mkdir.name[${i}]`, "directory", add);
  const pxe = spec.pxe_config;
  if (pxe && !pxe.dhcp) {
    for (const key of ["local_ip", "netmask", "net_name", "route_ip"] as const)
      if (pxe[key] === undefined)
        add(
          "pxe_config",
          "pxe.static",
          `pxe_config.${key} is required when dhcp = false`,
          "set it, or set dhcp = true",
        );
    if (pxe.local_ip && pxe.netmask && pxe.route_ip) {
      const mask = ipv4ToNumber(pxe.netmask);
      if (((ipv4ToNumber(pxe.local_ip) ^ ipv4ToNumber(pxe.route_ip)) & mask) !== 0)
        add(
          "pxe_config.route_ip",
          "pxe.route",
          `route_ip ${pxe.route_ip} is not in ${pxe.local_ip}/${pxe.netmask}`,
          "the gateway must be on the local network",
        );
    }
  }
  const size = spec.disk_partition?.img_size;
  if (size !== undefined) {
    const bytes = imgSizeBytes(size);
    const needed = (spec.disk_partition?.root ?? 2560) * 2 ** 20 + 256 * 2 ** 20;
    if (bytes < needed)
      add(
        "disk_partition.img_size",
        "disk.small",
        `img_size is ${bytes} bytes, less than the ESP and root partitions need (${needed})`,
        "raise img_size or lower root",
      );
  }
}

function duplicates(
  values: readonly string[],
  path: (i: number) => string,
  what: string,
  add: (path: string, code: string, message: string, hint?: string) => void,
): void {
  const seen = new Map<string, number>();
  for (const [i, v] of values.entries()) {
    const first = seen.get(v);
    if (first !== undefined)
      add(path(i), "spec.duplicate", `${what} "${printable(v)}" is listed twice`, `first at ${path(first)}`);
    else seen.set(v, i);
  }
}

/** disk_partition.img_size in bytes: a number is GB (10^9 bytes, like kbimg), a string a quantity. */
export function imgSizeBytes(size: number | string): number {
  if (typeof size === "number") return size * 1e9;
  const q = parseQuantity(size);
  return q.ok ? q.quantity.value : 0;
}

/** The boot loader password, from [bootloader] or kbimg's [grub]. */
export function bootloaderPassword(spec: BuildSpec): string | undefined {
  return (spec.bootloader ?? spec.grub)?.passwd;
}
