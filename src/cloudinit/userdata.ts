// User data for a VM: the catalog entry's CLOUD_INIT merged with what the request asks for (SSH keys, a
// password, the user's own additions). Pure: strings in, a string out.
//
// Merge rules (the same for every #cloud-config source, applied in order: catalog, then the user's):
//   - mappings merge key by key, recursively;
//   - lists are appended (packages, runcmd, write_files, bootcmd, users, ...), never replaced;
//   - any other value from a later source replaces the earlier one (reported as a warning when the two
//     differ in kind, e.g. a list replaced by a string).
// Merging happens on YAML nodes (YAML 1.1, the dialect cloud-init reads), so comments, quoting, block
// scalars and octal modes such as `permissions: 0644` survive as written.
//
// A `#!` script (catalog or user) stays runnable: it becomes a write_files entry under
// /var/lib/osimg/scripts/ (mode 0700) plus a runcmd item that runs it, in its place in the order. This keeps
// the result a single #cloud-config, and cloud-init runs it at the same stage a user-data script runs
// (scripts_user, in the final stage, once per instance).
// Other kinds of user data (a `## template: jinja`, `#include`, `#cloud-boothook` or a MIME multipart) cannot
// be merged as YAML; the result is then a MIME multipart whose first part is the merged #cloud-config and
// whose next parts are those sources verbatim. cloud-init merges a later #cloud-config part by its own rules
// (lists replaced unless that part sets merge_how), so keep users/ssh keys out of such parts.
//
// Request fields:
//   - sshKeys go to CLOUD_USER through `users`: `default` stays first in the list (so the distro's default user
//     keeps working; cloud-init merges an entry of the same name into it), then an entry for CLOUD_USER with
//     the keys, passwordless sudo and bash. When the merged config already has a `users` list, the entry is
//     added to it (or its keys to an existing entry of that name) and `default` is not added: that list says
//     which users the author wants.
//   - password goes through `chpasswd.users` (type text) with `expire: false` unless the config set expire;
//     SSH password logins are left as the image has them (set ssh_pwauth in userData to change that).

import { Document, isMap, isScalar, isSeq, parseDocument, type YAMLMap, type YAMLSeq } from "yaml";
import { USER_NAME } from "../catalog/fields.ts";

export type UserDataField =
  | "CLOUD_INIT"
  | "userData"
  | "cloudUser"
  | "password"
  | "hostname"
  | "instanceId"
  | `sshKeys[${number}]`;

/** Bad input, naming the field (and the line:column inside it) with a fix; the API answers it with a 422. */
export class UserDataError extends Error {
  override name = "UserDataError";
  readonly field: UserDataField;
  readonly detail: string;
  readonly hint: string | undefined;
  /** 1-based position inside the field's text, when the problem is at one place. */
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(field: UserDataField, detail: string, hint?: string, line?: number, column?: number) {
    const where = line !== undefined ? `${field}:${line}:${column ?? 1}` : field;
    super(`${where}: ${detail}${hint ? ` (${hint})` : ""}`);
    this.field = field;
    this.detail = detail;
    this.hint = hint;
    this.line = line;
    this.column = column;
  }
}

export interface UserDataRequest {
  /** The entry's CLOUD_USER: who gets the SSH keys and the password. */
  cloudUser: string;
  sshKeys: readonly string[];
  password?: string | undefined;
  /** The user's own user data: a #cloud-config (merged) or another kind (kept as a part). */
  userData?: string | undefined;
}

export interface MergedUserData {
  /** What cloud-init reads as user-data. */
  text: string;
  /** "cloud-config" when it is one #cloud-config document, "multipart" when parts had to be kept apart. */
  format: "cloud-config" | "multipart";
  warnings: string[];
}

export const SCRIPTS_DIR = "/var/lib/osimg/scripts";

const SSH_KEY =
  /^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;

type Kind = "cloud-config" | "script" | "other" | "empty";

function kindOf(text: string): Kind {
  if (text.trim() === "") return "empty";
  const first = text.split("\n", 1)[0]?.trimEnd() ?? "";
  if (first.startsWith("#cloud-config")) return "cloud-config";
  if (first.startsWith("#!")) return "script";
  return "other";
}

const OTHER_KINDS: readonly [string, string][] = [
  ["## template: jinja", "text/jinja2"],
  ["#include", "text/x-include-url"],
  ["#cloud-boothook", "text/cloud-boothook"],
  ["Content-Type: multipart/", ""],
];

function checkRequest(request: UserDataRequest): void {
  if (!USER_NAME.test(request.cloudUser))
    throw new UserDataError(
      "cloudUser",
      `"${request.cloudUser}" is not a valid user name`,
      "use letters, digits, '.', '-' and '_', starting with a letter or '_', at most 32 characters",
    );
  request.sshKeys.forEach((key, i) => {
    if (!SSH_KEY.test(key.trim()))
      throw new UserDataError(
        `sshKeys[${i}]`,
        "not an OpenSSH public key",
        'paste one line of a .pub file, such as "ssh-ed25519 AAAA... user@host"',
      );
  });
  if (request.password !== undefined && (request.password === "" || /[\r\n:]/.test(request.password)))
    throw new UserDataError("password", "must be non-empty and contain no newline or colon");
}

/** Parses one #cloud-config source into a YAML 1.1 document whose contents is a mapping. */
function parseConfig(text: string, field: UserDataField): Document {
  const doc = parseDocument(text, { version: "1.1", keepSourceTokens: false });
  const error = doc.errors[0];
  if (error) {
    const pos = error.linePos?.[0];
    throw new UserDataError(
      field,
      `not valid YAML: ${(error.message.split("\n", 1)[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")}`,
      "check the indentation; #cloud-config is YAML",
      pos?.line,
      pos?.col,
    );
  }
  if (doc.contents === null) return new Document({}, { version: "1.1" });
  if (!isMap(doc.contents))
    throw new UserDataError(
      field,
      "a #cloud-config must be a mapping of modules",
      "write keys such as packages:, runcmd:, write_files: at the top level",
    );
  // The "#cloud-config" line is a YAML comment, held by the document or by the first key; the output
  // writes it once, first.
  doc.commentBefore = withoutHeader(doc.commentBefore);
  const firstKey = doc.contents.items[0]?.key;
  if (isScalar(firstKey)) firstKey.commentBefore = withoutHeader(firstKey.commentBefore);
  return doc;
}

function withoutHeader(comment: string | null | undefined): string | null {
  const rest = (comment ?? "")
    .split("\n")
    .filter((line) => !line.startsWith("cloud-config"))
    .join("\n");
  return rest.trim() === "" ? null : rest;
}

/** A script as a #cloud-config fragment: written to a file, then run from runcmd. */
function scriptAsConfig(text: string, name: string): Document {
  const path = `${SCRIPTS_DIR}/${name}`;
  const doc = new Document(
    { write_files: [{ path, permissions: "0700", owner: "root:root", content: text }], runcmd: [[path]] },
    { version: "1.1" },
  );
  return doc;
}

const describe = (node: unknown) => (isMap(node) ? "a mapping" : isSeq(node) ? "a list" : "a value");

/** Merges `from` into `into` (both mappings) by the rules above. */
function mergeMaps(into: YAMLMap, from: YAMLMap, target: Document, path: string, warnings: string[]): void {
  for (const pair of from.items) {
    const key = isScalar(pair.key) ? pair.key.value : pair.key;
    const existing = into.get(key, true);
    const incoming = pair.value;
    const where = path ? `${path}.${String(key)}` : String(key);
    if (existing === undefined || existing === null) {
      // The pair itself, so that comments on its key come along.
      if (into.has(key)) into.set(key, incoming);
      else into.items.push(pair);
    } else if (isMap(existing) && isMap(incoming)) {
      mergeMaps(existing, incoming, target, where, warnings);
    } else if (isSeq(existing) && isSeq(incoming)) {
      existing.items.push(...incoming.items);
    } else {
      if (describe(existing) !== describe(incoming))
        warnings.push(`${where}: ${describe(incoming)} replaces ${describe(existing)} set before it`);
      into.set(key, incoming);
    }
  }
}

function seqAt(doc: Document, key: string, field: string): YAMLSeq {
  const map = doc.contents as YAMLMap;
  let node: unknown = map.get(key, true);
  if (isScalar(node) && typeof node.value === "string") {
    // cloud-init also accepts `users: "default, bob"`.
    node = doc.createNode(
      node.value
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    );
    map.set(key, node);
  }
  if (node === undefined || node === null) {
    node = doc.createNode([]);
    map.set(key, node);
  }
  if (!isSeq(node))
    throw new UserDataError(
      "userData",
      `${field} must be a list`,
      `write ${field}: as a list ("- name: ..."), which osimg can add to`,
    );
  return node;
}

function addUser(doc: Document, request: UserDataRequest): void {
  const map = doc.contents as YAMLMap;
  const hadUsers = map.has("users");
  const users = seqAt(doc, "users", "users");
  if (!hadUsers) users.items.push(doc.createNode("default"));
  const keys = request.sshKeys.map((k) => k.trim());
  const existing = users.items.find(
    (item): item is YAMLMap => isMap(item) && item.get("name") === request.cloudUser,
  );
  if (existing) {
    const current = existing.get("ssh_authorized_keys", true);
    if (isSeq(current)) {
      const have = new Set(current.items.map((i) => (isScalar(i) ? i.value : undefined)));
      for (const key of keys) if (!have.has(key)) current.items.push(doc.createNode(key));
    } else if (keys.length > 0) {
      existing.set("ssh_authorized_keys", doc.createNode(keys));
    }
    if (request.password !== undefined) existing.set("lock_passwd", false);
    return;
  }
  const entry: Record<string, unknown> = {
    name: request.cloudUser,
    sudo: "ALL=(ALL) NOPASSWD:ALL",
    shell: "/bin/bash",
    lock_passwd: request.password === undefined,
  };
  if (keys.length > 0) entry.ssh_authorized_keys = keys;
  users.items.push(doc.createNode(entry));
}

function addPassword(doc: Document, request: UserDataRequest): void {
  if (request.password === undefined) return;
  const map = doc.contents as YAMLMap;
  let chpasswd: unknown = map.get("chpasswd", true);
  if (chpasswd === undefined || chpasswd === null) {
    chpasswd = doc.createNode({});
    map.set("chpasswd", chpasswd);
  }
  if (!isMap(chpasswd))
    throw new UserDataError("userData", "chpasswd must be a mapping", "write chpasswd: with users: below it");
  if (!chpasswd.has("expire")) chpasswd.set("expire", false);
  const list = chpasswd.get("users", true);
  const entry = doc.createNode({ name: request.cloudUser, password: request.password, type: "text" });
  if (isSeq(list)) list.items.push(entry);
  else chpasswd.set("users", doc.createNode([entry]));
}

function cloudConfigText(doc: Document): string {
  return `#cloud-config\n${doc.toString({ lineWidth: 0 })}`;
}

function multipart(parts: readonly { type: string; text: string; name: string }[]): string {
  let boundary = "==osimg-boundary==";
  for (let n = 1; parts.some((p) => p.text.includes(boundary)); n++) boundary = `==osimg-boundary-${n}==`;
  const body = parts
    .map((p) => {
      // A multipart source keeps its own headers: it becomes a nested multipart part.
      const head = p.type
        ? `Content-Type: ${p.type}; charset="utf-8"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\nContent-Disposition: attachment; filename="${p.name}"\n\n`
        : "";
      return `--${boundary}\n${head}${p.text.endsWith("\n") ? p.text : `${p.text}\n`}`;
    })
    .join("");
  return `Content-Type: multipart/mixed; boundary="${boundary}"\nMIME-Version: 1.0\n\n${body}--${boundary}--\n`;
}

/** The user-data for a VM: CLOUD_INIT of the catalog entry (may be absent) merged with the request. */
export function mergeUserData(
  catalogCloudInit: string | undefined,
  request: UserDataRequest,
): MergedUserData {
  checkRequest(request);
  const warnings: string[] = [];
  const result = new Document({}, { version: "1.1" });
  const passthrough: { type: string; text: string; name: string }[] = [];
  const sources: [UserDataField, string | undefined, string][] = [
    ["CLOUD_INIT", catalogCloudInit, "catalog"],
    ["userData", request.userData, "user"],
  ];
  for (const [field, text, name] of sources) {
    if (text === undefined) continue;
    const kind = kindOf(text);
    if (kind === "empty") continue;
    if (kind === "other") {
      const known = OTHER_KINDS.find(([header]) => text.startsWith(header));
      if (!known)
        throw new UserDataError(
          field,
          "does not start with #cloud-config, #!, ## template: jinja, #include, #cloud-boothook or a MIME multipart",
          'make "#cloud-config" the first line',
          1,
          1,
        );
      passthrough.push({ type: known[1], text, name });
      continue;
    }
    const doc = kind === "script" ? scriptAsConfig(text, name) : parseConfig(text, field);
    if (result.commentBefore === null || result.commentBefore === undefined)
      result.commentBefore = doc.commentBefore ?? null;
    mergeMaps(result.contents as YAMLMap, doc.contents as YAMLMap, result, "", warnings);
  }
  if (request.sshKeys.length > 0 || request.password !== undefined) addUser(result, request);
  addPassword(result, request);
  const config = cloudConfigText(result);
  if (passthrough.length === 0) return { text: config, format: "cloud-config", warnings };
  return {
    text: multipart([{ type: "text/cloud-config", text: config, name: "osimg.cfg" }, ...passthrough]),
    format: "multipart",
    warnings,
  };
}
