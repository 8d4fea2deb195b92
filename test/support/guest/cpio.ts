// A cpio archive in the "newc" format the Linux kernel unpacks as an initramfs. Pure and deterministic
// (mtime 0, inode numbers in order), so the same files give the same bytes and the same cache key.

export type CpioEntry =
  | { kind: "dir"; path: string; mode?: number }
  | { kind: "file"; path: string; data: Uint8Array | string; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "chardev"; path: string; major: number; minor: number; mode?: number };

const TYPE = { dir: 0o040000, file: 0o100000, symlink: 0o120000, chardev: 0o020000 } as const;

function pad4(length: number): Uint8Array {
  return new Uint8Array((4 - (length % 4)) % 4);
}

function header(fields: {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  nameSize: number;
}): string {
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  return (
    "070701" +
    [
      fields.ino,
      fields.mode,
      0, // uid
      0, // gid
      fields.nlink,
      0, // mtime
      fields.size,
      0, // dev major
      0, // dev minor
      fields.rdevMajor,
      fields.rdevMinor,
      fields.nameSize,
      0, // check
    ]
      .map(hex)
      .join("")
  );
}

export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Uint8Array[] = [];
  const add = (
    name: string,
    mode: number,
    data: Uint8Array,
    ino: number,
    rdev: [number, number] = [0, 0],
  ) => {
    const nameBytes = Buffer.from(`${name}\0`, "utf8");
    const head = Buffer.from(
      header({
        ino,
        mode,
        nlink: (mode & 0o170000) === TYPE.dir ? 2 : 1,
        size: data.length,
        rdevMajor: rdev[0],
        rdevMinor: rdev[1],
        nameSize: nameBytes.length,
      }),
      "latin1",
    );
    parts.push(head, nameBytes, pad4(head.length + nameBytes.length), data, pad4(data.length));
  };
  entries.forEach((entry, i) => {
    const name = entry.path.replace(/^\/+/, "");
    const ino = i + 1;
    switch (entry.kind) {
      case "dir":
        add(name, TYPE.dir | (entry.mode ?? 0o755), new Uint8Array(0), ino);
        break;
      case "file":
        add(
          name,
          TYPE.file | (entry.mode ?? 0o644),
          typeof entry.data === "string" ? Buffer.from(entry.data, "utf8") : entry.data,
          ino,
        );
        break;
      case "symlink":
        add(name, TYPE.symlink | 0o777, Buffer.from(entry.target, "utf8"), ino);
        break;
      case "chardev":
        add(name, TYPE.chardev | (entry.mode ?? 0o600), new Uint8Array(0), ino, [entry.major, entry.minor]);
        break;
    }
  });
  add("TRAILER!!!", 0, new Uint8Array(0), 0);
  return Buffer.concat(parts);
}
