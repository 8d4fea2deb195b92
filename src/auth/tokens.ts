// Static API tokens for the embedded default (`--auth token`): a 0600 JSON file in the data directory
// with one entry per token — its id, name, role and projects, and a salted SHA-256 of its secret (never
// the secret). A token is `osimg_<id>_<secret>`: the id finds the entry without trying every hash, the
// 256-bit random secret makes a slow hash unnecessary (there is nothing to guess). The file is created on
// the first start with one admin token, printed once; `osimg token create|list|revoke` manage it, and a
// running server picks up changes (a revoked token stops working within about a second).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import { mkdir, open, readFile, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { isDns1123Label } from "../util/names.ts";
import { ROLES, type Role } from "./policy-table.ts";
import type { Principal } from "./principal.ts";

export const TOKEN_PREFIX = "osimg_";
const ID_HEX = 16;
/** All projects: a member or viewer of every project. */
export const ALL_PROJECTS = "*";

export const StoredToken = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  name: z.string(),
  role: z.enum(ROLES),
  projects: z.array(z.string()),
  salt: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string(),
});
export type StoredToken = z.infer<typeof StoredToken>;

const TokenFileBody = z.object({ version: z.literal(1), tokens: z.array(StoredToken) });

/** A token as listed: everything but the salt and hash. */
export type TokenInfo = Omit<StoredToken, "salt" | "sha256">;

export function tokenFilePath(dataDir: string): string {
  return join(dataDir, "tokens.json");
}

export function hashSecret(salt: string, secret: string): string {
  return createHash("sha256").update(salt).update("\0").update(secret).digest("hex");
}

export function parseToken(token: string): { id: string; secret: string } | undefined {
  if (!token.startsWith(TOKEN_PREFIX)) return undefined;
  const id = token.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + ID_HEX);
  const secret = token.slice(TOKEN_PREFIX.length + ID_HEX + 1);
  if (!/^[0-9a-f]{16}$/.test(id) || token[TOKEN_PREFIX.length + ID_HEX] !== "_" || secret.length < 32)
    return undefined;
  return { id, secret };
}

const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/;

/** Why a token request is not valid (naming the field and the fix), or undefined. */
export function tokenRequestProblem(request: {
  name: string;
  role: string;
  projects: string[];
}): string | undefined {
  if (!TOKEN_NAME.test(request.name))
    return `--name "${request.name}": letters, digits, '.', '_', '@' and '-', at most 63 characters`;
  if (!(ROLES as readonly string[]).includes(request.role))
    return `--role "${request.role}": one of ${ROLES.join(", ")}`;
  for (const p of request.projects)
    if (p !== ALL_PROJECTS && !isDns1123Label(p))
      return `--project "${p}": a project is a namespace name (DNS-1123 label), or '*' for every project`;
  if (request.role !== "admin" && request.projects.length === 0)
    return `a ${request.role} token needs --project NAME (repeatable, or '*' for every project)`;
  return undefined;
}

/** The identity a stored token stands for. */
export function principalOf(entry: TokenInfo): Principal {
  const all = entry.role === "admin" || entry.projects.includes(ALL_PROJECTS);
  const projects: Record<string, Role> = {};
  if (!all) for (const p of entry.projects) projects[p] = entry.role;
  return {
    subject: `token:${entry.id}`,
    name: entry.name,
    via: "token",
    ...(all ? { clusterRole: entry.role } : {}),
    projects,
  };
}

function info(entry: StoredToken): TokenInfo {
  const { salt: _salt, sha256: _sha256, ...rest } = entry;
  return rest;
}

/** The token file: read, and changed under a lock (a CLI and a server's first start may race). */
export class TokenFile {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  async exists(): Promise<boolean> {
    return (await stat(this.path).catch(() => undefined)) !== undefined;
  }

  async read(): Promise<StoredToken[]> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new Error(`${this.path}: not JSON (${(error as Error).message}); restore it or remove it`);
    }
    const parsed = TokenFileBody.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Error(
        `${this.path}: ${issue?.path.join(".") || "(top)"}: ${issue?.message}; it is written by osimg, restore it or remove it`,
      );
    }
    return parsed.data.tokens;
  }

  async list(): Promise<TokenInfo[]> {
    return (await this.read()).map(info);
  }

  /** Adds a token; the returned secret is shown once and never stored. */
  async create(request: { name: string; role: Role; projects: string[] }): Promise<{
    token: string;
    info: TokenInfo;
  }> {
    const problem = tokenRequestProblem(request);
    if (problem) throw new Error(problem);
    return this.#locked(async () => {
      const tokens = await this.read();
      if (tokens.some((t) => t.name === request.name))
        throw new Error(`a token named "${request.name}" exists; revoke it first or choose another --name`);
      const { token, entry } = mint(request);
      await this.#write([...tokens, entry]);
      return { token, info: info(entry) };
    });
  }

  /** Removes a token by id or name; undefined when there is none. */
  async revoke(idOrName: string): Promise<TokenInfo | undefined> {
    return this.#locked(async () => {
      const tokens = await this.read();
      const found = tokens.find((t) => t.id === idOrName || t.name === idOrName);
      if (!found) return undefined;
      await this.#write(tokens.filter((t) => t !== found));
      return info(found);
    });
  }

  /** On the first start: the file with one admin token, whose secret is returned (to print once). */
  async initialize(): Promise<string | undefined> {
    return this.#locked(async () => {
      if (await this.exists()) return undefined;
      const { token, entry } = mint({ name: "admin", role: "admin", projects: [] });
      await this.#write([entry]);
      return token;
    });
  }

  async #write(tokens: StoredToken[]): Promise<void> {
    await writeFileAtomic(this.path, `${JSON.stringify({ version: 1, tokens }, null, 2)}\n`, 0o600);
  }

  async #locked<T>(action: () => Promise<T>): Promise<T> {
    const lock = `${this.path}.lock`;
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await open(lock, "wx", 0o600);
        await handle.close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") {
          await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
          continue;
        }
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        const age = Date.now() - ((await stat(lock).catch(() => undefined))?.mtimeMs ?? Date.now());
        if (age > 10_000)
          await rm(lock, { force: true }); // left by a process that died
        else if (attempt > 200) throw new Error(`${lock} is held by another osimg process`);
        else await new Promise((r) => setTimeout(r, 25));
      }
    }
    try {
      return await action();
    } finally {
      await rm(lock, { force: true });
    }
  }
}

function mint(request: { name: string; role: Role; projects: string[] }): {
  token: string;
  entry: StoredToken;
} {
  const id = randomBytes(ID_HEX / 2).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const salt = randomBytes(16).toString("base64url");
  return {
    token: `${TOKEN_PREFIX}${id}_${secret}`,
    entry: {
      id,
      name: request.name,
      role: request.role,
      projects: [...new Set(request.projects)].sort(),
      salt,
      sha256: hashSecret(salt, secret),
      createdAt: new Date().toISOString(),
    },
  };
}

/**
 * Checks presented tokens against the file, kept in memory and reloaded when the file changes (watched;
 * and checked at most once a second on a miss, in case a watch event was lost).
 */
export class TokenAuthenticator {
  readonly file: TokenFile;
  #byId = new Map<string, StoredToken>();
  #generation = 0;
  #watcher: FSWatcher | undefined;
  #checkedAt = 0;
  #mtimeMs = 0;
  #reloading: Promise<void> | undefined;

  constructor(file: TokenFile) {
    this.file = file;
  }

  /** Bumped on every reload: verified tokens cached before it are checked again. */
  get generation(): number {
    return this.#generation;
  }

  async start(): Promise<void> {
    await this.#reload();
    const name = basename(this.file.path);
    this.#watcher = watch(dirname(this.file.path), (_event, file) => {
      if (file === name) this.#reload().catch(() => undefined); // a broken file: the last good tokens stay
    });
    this.#watcher.on("error", () => {
      this.#watcher?.close();
      this.#watcher = undefined;
    });
  }

  stop(): void {
    this.#watcher?.close();
  }

  async authenticate(token: string): Promise<Principal | undefined> {
    const parsed = parseToken(token);
    if (!parsed) return undefined;
    await this.#recheck();
    const entry = this.#byId.get(parsed.id);
    if (!entry) return undefined;
    const expected = Buffer.from(entry.sha256, "hex");
    const actual = Buffer.from(hashSecret(entry.salt, parsed.secret), "hex");
    return timingSafeEqual(expected, actual) ? principalOf(info(entry)) : undefined;
  }

  async #recheck(): Promise<void> {
    if (Date.now() - this.#checkedAt < 1000) return;
    this.#checkedAt = Date.now();
    const s = await stat(this.file.path).catch(() => undefined);
    if ((s?.mtimeMs ?? 0) !== this.#mtimeMs) await this.#reload().catch(() => undefined);
  }

  #reload(): Promise<void> {
    this.#reloading ??= (async () => {
      try {
        const s = await stat(this.file.path).catch(() => undefined);
        const tokens = await this.file.read();
        this.#byId = new Map(tokens.map((t) => [t.id, t]));
        this.#mtimeMs = s?.mtimeMs ?? 0;
        this.#generation++;
      } finally {
        this.#reloading = undefined;
      }
    })();
    return this.#reloading;
  }
}
