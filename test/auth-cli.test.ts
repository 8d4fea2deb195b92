// Authentication on the command line: `osimg serve` creates the token file with an admin token shown
// once (and never again), `osimg token create|list|revoke` (a revoked token is refused by the running
// server within seconds), `osimg login|whoami|logout` with the credentials file (0600), and the CLI's
// commands using the saved login or OSIMG_TOKEN.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer } from "./support/auth.ts";
import { catalogYaml, UBUNTU } from "./support/catalogs.ts";
import { eventually, startTestServer, type TestServer, tempDir } from "./support/server.ts";

const BIN = new URL("../bin/osimg.js", import.meta.url).pathname;
// Each CLI run starts a Node process (seconds on a busy machine); the tests run several.
const CLI_MS = 180_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function osimg(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, OSIMG_TOKEN: "", ...options.env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.stdin.end(options.input ?? "");
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `osimg serve` as a process: resolves with its URL and everything it printed until listening. */
async function serveProcess(
  args: string[],
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [BIN, "serve", "--port", "0", ...args], {
    env: { ...process.env, OSIMG_LOG_LEVEL: "info", OSIMG_AUTH: "" },
  });
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output += d;
  });
  let url = "";
  await eventually(
    () => {
      if (child.exitCode !== null) throw new Error(`osimg serve exited: ${output}`);
      url = /osimg listening on (http:\/\/[^"\s]+)/.exec(output)?.[1] ?? "";
      return url !== "";
    },
    60_000,
    "osimg serve to listen",
  );
  return { child, url, output: () => output };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

describe("osimg serve's first start", () => {
  it(
    "prints an admin token once, which works, and never again",
    async () => {
      const dataDir = tempDir("osimg-first-");
      const first = await serveProcess(["--data-dir", dataDir]);
      let token: string;
      try {
        token = /osimg_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(first.output())?.[0] ?? "";
        expect(token).not.toBe("");
        const me = await fetch(`${first.url}/api/v1/whoami`, { headers: bearer(token) });
        expect(await me.json()).toMatchObject({ name: "admin", clusterRole: "admin" });
        expect((await fetch(`${first.url}/api/v1/catalog`)).status).toBe(401);
        expect(first.output()).not.toMatch(/NO AUTHENTICATION/);
      } finally {
        await stop(first.child);
      }
      const second = await serveProcess(["--data-dir", dataDir]);
      try {
        expect(second.output()).not.toMatch(/osimg_[0-9a-f]{16}_/);
        expect((await fetch(`${second.url}/api/v1/whoami`, { headers: bearer(token) })).status).toBe(200);
      } finally {
        await stop(second.child);
      }
      expect(statSync(join(dataDir, "tokens.json")).mode & 0o777).toBe(0o600);
    },
    CLI_MS,
  );

  it(
    "runs --auth none only on loopback, warning loudly",
    async () => {
      const refused = await osimg(["serve", "--auth", "none", "--host", "0.0.0.0", "--data-dir", tempDir()]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/--auth none is refused on 0\.0\.0\.0/);
      const open = await serveProcess(["--auth", "none", "--data-dir", tempDir()]);
      try {
        expect(open.output()).toMatch(/NO AUTHENTICATION/);
        expect((await fetch(`${open.url}/api/v1/catalog`)).status).toBe(200);
      } finally {
        await stop(open.child);
      }
    },
    CLI_MS,
  );
});

describe("tokens and logins", () => {
  let server: TestServer;
  let dataDir: string;
  let config: string;

  beforeAll(async () => {
    dataDir = tempDir("osimg-cli-auth-");
    config = tempDir("osimg-config-");
    const catalogPath = join(dataDir, "catalog.yaml");
    writeFileSync(catalogPath, catalogYaml([UBUNTU]));
    server = await startTestServer({
      catalogPath,
      dataDir,
      auth: { mode: "token", onFirstToken: () => undefined },
    });
  });

  afterAll(async () => {
    await server?.stop();
  });

  const env = () => ({ XDG_CONFIG_HOME: config, OSIMG_SERVER: server.url });

  it(
    "creates a member token that the running server accepts, lists without secrets, revokes",
    async () => {
      const created = await osimg([
        "token",
        "create",
        "--role",
        "member",
        "--project",
        "demo",
        "--data-dir",
        dataDir,
      ]);
      expect(created.code).toBe(0);
      const token = created.stdout.trim();
      expect(token).toMatch(/^osimg_[0-9a-f]{16}_/);
      expect(created.stderr).toMatch(
        /created token "member-demo" \(id [0-9a-f]{16}\); it is shown this once/,
      );
      const vms = (t: string, ns = "demo") =>
        fetch(`${server.url}/api/v1/namespaces/${ns}/vms`, { headers: bearer(t) });
      await eventually(async () => (await vms(token)).status === 200, 10_000, "the new token to work");
      expect((await vms(token, "other")).status).toBe(403);

      const listed = await osimg(["token", "list", "--data-dir", dataDir]);
      expect(listed.stdout).toMatch(/member-demo\s+member\s+demo/);
      expect(listed.stdout).toMatch(/admin\s+admin\s+\(all\)/);
      expect(listed.stdout).not.toContain(token.slice(23));
      const json = JSON.parse(
        (await osimg(["token", "list", "--json", "--data-dir", dataDir])).stdout,
      ) as object[];
      expect(JSON.stringify(json)).not.toMatch(/salt|sha256/);

      const refused = await osimg(["token", "create", "--role", "viewer", "--data-dir", dataDir]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/a viewer token needs --project/);

      const revoked = await osimg(["token", "revoke", "member-demo", "--data-dir", dataDir]);
      expect(revoked.stdout).toMatch(/^revoked [0-9a-f]{16} \(member-demo\)/);
      await eventually(
        async () => (await vms(token)).status === 401,
        10_000,
        "the revoked token to be refused",
      );
    },
    CLI_MS,
  );

  it(
    "logs in with a token from stdin, saves it 0600, and the CLI uses it; OSIMG_TOKEN wins",
    async () => {
      const token = (
        await osimg(["token", "create", "--role", "viewer", "--project", "demo", "--data-dir", dataDir])
      ).stdout.trim();
      await eventually(
        async () => (await fetch(`${server.url}/api/v1/whoami`, { headers: bearer(token) })).status === 200,
        10_000,
        "the token to work",
      );
      const bad = await osimg(["login"], {
        env: env(),
        input: "osimg_0123456789abcdef_nope-nope-nope-nope-nope-nope-nope\n",
      });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/error: invalid credentials: the token is not valid/);

      const login = await osimg(["login"], { env: env(), input: `${token}\n` });
      expect(login.stderr).toBe("");
      expect(login.stdout).toBe(`logged in to ${server.url} as viewer-demo (viewer in demo)\n`);
      const file = join(config, "osimg", "credentials");
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(join(config, "osimg")).mode & 0o777).toBe(0o700);
      expect(JSON.parse(readFileSync(file, "utf8")).servers[server.url].token).toBe(token);

      expect((await osimg(["whoami"], { env: env() })).stdout).toBe(
        "viewer-demo via token: viewer in demo\n",
      );
      const list = await osimg(["vm", "list", "-n", "demo"], { env: env() });
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/^NAME\s+PHASE/);
      const other = await osimg(["vm", "list", "-n", "other"], { env: env() });
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/viewer-demo may not vm\.read in project other/);
      const overridden = await osimg(["whoami"], { env: { ...env(), OSIMG_TOKEN: "osimg_bad" } });
      expect(overridden.code).toBe(1);

      expect((await osimg(["logout"], { env: env() })).stdout).toBe(`logged out of ${server.url}\n`);
      const after = await osimg(["vm", "list", "-n", "demo"], { env: env() });
      expect(after.code).toBe(1);
      expect(after.stderr).toMatch(/needs credentials/);
    },
    CLI_MS,
  );
});
