// The CLI's saved logins: ~/.config/osimg/credentials ($XDG_CONFIG_HOME honoured), 0600 in a 0700
// directory, one token per server URL. Written by `osimg login`, read by every command that talks to a
// server (OSIMG_TOKEN, when set, wins).
import { readFileSync } from "node:fs";
import { chmod, mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../util/atomic-write.ts";

const CredentialsFile = z.object({
  servers: z.record(z.string(), z.object({ token: z.string(), savedAt: z.string() })),
});
type CredentialsFile = z.infer<typeof CredentialsFile>;

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "osimg", "credentials");
}

/** Server URLs compare without a trailing slash. */
export function serverKey(server: string): string {
  return server.replace(/\/+$/, "");
}

function read(path: string): CredentialsFile {
  try {
    const parsed = CredentialsFile.safeParse(JSON.parse(readFileSync(path, "utf8")));
    return parsed.success ? parsed.data : { servers: {} };
  } catch {
    return { servers: {} };
  }
}

export function storedToken(server: string, path = credentialsPath()): string | undefined {
  return read(path).servers[serverKey(server)]?.token;
}

export async function storeToken(server: string, token: string, path = credentialsPath()): Promise<void> {
  const file = read(path);
  file.servers[serverKey(server)] = { token, savedAt: new Date().toISOString() };
  await write(path, file);
}

export async function forgetToken(server: string, path = credentialsPath()): Promise<boolean> {
  const file = read(path);
  if (!file.servers[serverKey(server)]) return false;
  delete file.servers[serverKey(server)];
  await write(path, file);
  return true;
}

async function write(path: string, file: CredentialsFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await chmod(dirname(path), 0o700);
  await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
}
