// Users and groups of an image, edited as text: /etc/passwd, /etc/group, /etc/shadow and /etc/gshadow are
// read from the root filesystem, changed here (pure functions), and written back. This is what useradd
// would do inside a chroot as root, without a chroot and without root. Every value put into these files
// was validated by the spec (names, crypt hashes) so that no field can carry a ':' or a line break.

export class AccountError extends Error {
  override name = "AccountError";
  /** The spec field it is about (a pathOf() string). */
  readonly field: string;
  readonly hint: string | undefined;

  constructor(field: string, message: string, hint?: string) {
    super(message);
    this.field = field;
    this.hint = hint;
  }
}

export interface AccountFiles {
  passwd: string;
  group: string;
  shadow: string;
  gshadow?: string | undefined;
}

export interface NewUser {
  name: string;
  /** crypt hash; "!" (locked) when absent. */
  passwd?: string | undefined;
  primaryGroup?: string | undefined;
  groups: readonly string[];
  shell: string;
  /** The spec path of this user, for errors ("users[1]"). */
  field: string;
}

export interface CreatedUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

type Row = string[];

const rows = (text: string): Row[] =>
  text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => line.split(":"));
const unrows = (table: Row[]) => `${table.map((r) => r.join(":")).join("\n")}\n`;

/** The first free id at or above `min` (and below 60000, Debian's range for ordinary accounts). */
function freeId(used: ReadonlySet<number>, min = 1000, max = 59999): number {
  for (let id = min; id <= max; id++) if (!used.has(id)) return id;
  throw new Error(`no free id between ${min} and ${max}`);
}

/** Days since the epoch, as shadow's "last change" field counts them. */
export function shadowDay(epochSeconds: number): number {
  return Math.floor(epochSeconds / 86400);
}

export function setRootPassword(files: AccountFiles, hash: string, epochSeconds: number): AccountFiles {
  const shadow = rows(files.shadow);
  const root = shadow.find((r) => r[0] === "root");
  if (!root) throw new AccountError("from_repo.root_passwd", "the image's /etc/shadow has no root entry");
  root[1] = hash;
  root[2] = String(shadowDay(epochSeconds));
  return { ...files, shadow: unrows(shadow) };
}

/** Adds users (and their groups) to the account files; supplementary groups must exist or be created here. */
export function addUsers(
  files: AccountFiles,
  users: readonly NewUser[],
  epochSeconds: number,
): { files: AccountFiles; created: CreatedUser[] } {
  const passwd = rows(files.passwd);
  const group = rows(files.group);
  const shadow = rows(files.shadow);
  const gshadow = files.gshadow === undefined ? undefined : rows(files.gshadow);
  const uids = new Set(passwd.map((r) => Number(r[2])));
  const gids = new Set(group.map((r) => Number(r[2])));
  const groupRow = (name: string) => group.find((r) => r[0] === name);
  const addGroup = (name: string, preferred?: number): number => {
    const gid = preferred !== undefined && !gids.has(preferred) ? preferred : freeId(gids);
    gids.add(gid);
    group.push([name, "x", String(gid), ""]);
    gshadow?.push([name, "!", "", ""]);
    return gid;
  };
  const created: CreatedUser[] = [];
  for (const user of users) {
    if (passwd.some((r) => r[0] === user.name))
      throw new AccountError(
        `${user.field}.name`,
        `user "${user.name}" already exists in the image`,
        "pick another name; to change an existing account use [chroot_script]",
      );
    const uid = freeId(uids);
    uids.add(uid);
    const primary = user.primaryGroup ?? user.name;
    const gid = Number(groupRow(primary)?.[2] ?? addGroup(primary, uid));
    const home = `/home/${user.name}`;
    passwd.push([user.name, "x", String(uid), String(gid), "", home, user.shell]);
    shadow.push([
      user.name,
      user.passwd ?? "!",
      String(shadowDay(epochSeconds)),
      "0",
      "99999",
      "7",
      "",
      "",
      "",
    ]);
    created.push({ name: user.name, uid, gid, home });
  }
  // Memberships after every user exists: a group may be another user's primary group.
  for (const user of users) {
    for (const [i, name] of user.groups.entries()) {
      const row = groupRow(name);
      if (!row)
        throw new AccountError(
          `${user.field}.groups[${i}]`,
          `group "${name}" does not exist in the image`,
          "install the package that creates it, name a group of another [[users]] entry, or create it in [chroot_script]",
        );
      const members = (row[3] ?? "").split(",").filter(Boolean);
      if (!members.includes(user.name)) row[3] = [...members, user.name].join(",");
      const shadowRow = gshadow?.find((r) => r[0] === name);
      if (shadowRow) {
        const shadowMembers = (shadowRow[3] ?? "").split(",").filter(Boolean);
        if (!shadowMembers.includes(user.name)) shadowRow[3] = [...shadowMembers, user.name].join(",");
      }
    }
  }
  return {
    files: {
      passwd: unrows(passwd),
      group: unrows(group),
      shadow: unrows(shadow),
      gshadow: gshadow === undefined ? undefined : unrows(gshadow),
    },
    created,
  };
}

/** Resolves "user[:group]" (names or numbers) against the account files. */
export function resolveOwner(
  files: AccountFiles,
  owner: string,
  field: string,
): { uid: number; gid: number } {
  const [userPart, groupPart] = owner.split(":") as [string, string | undefined];
  const passwd = rows(files.passwd);
  const group = rows(files.group);
  let uid: number;
  let defaultGid = 0;
  if (/^\d+$/.test(userPart)) uid = Number(userPart);
  else {
    const row = passwd.find((r) => r[0] === userPart);
    if (!row)
      throw new AccountError(
        field,
        `user "${userPart}" does not exist in the image`,
        "create it with [[users]] or use a number",
      );
    uid = Number(row[2]);
    defaultGid = Number(row[3]);
  }
  if (groupPart === undefined) return { uid, gid: defaultGid };
  if (/^\d+$/.test(groupPart)) return { uid, gid: Number(groupPart) };
  const row = group.find((r) => r[0] === groupPart);
  if (!row)
    throw new AccountError(
      field,
      `group "${groupPart}" does not exist in the image`,
      "create it with [[users]] or use a number",
    );
  return { uid, gid: Number(row[2]) };
}
