// Secrets never leak: a password given at VM create and every token used (good, bad, in headers and in
// WebSocket subprotocols) appear in no line the server logs (at trace level), in no answer of any GET
// route of the server, and in no file it keeps except as intended (the password in a 0600 file, tokens
// only as salted hashes).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDACT } from "../src/auth/redact.ts";
import { declaredRoutes } from "../src/server/policy.ts";
import { bearer, LOCAL_ENTRY, OWN, type RoleTokens, startTokenServer, upgrade } from "./support/auth.ts";
import type { TestServer } from "./support/server.ts";

const PASSWORD = "pw-Zq8t-correct-horse-battery";
const ENTRY = LOCAL_ENTRY;
const VM = "secret-vm";

let server: TestServer;
let tokens: RoleTokens;
let dataDir: string;
const logLines: string[] = [];
const answers: { what: string; text: string }[] = [];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  // The server's own logger settings (redaction) at the most talkative level.
  const logger = pino({ level: "trace", redact: REDACT }, sink);
  ({ server, tokens, dataDir } = await startTokenServer({ prefix: "osimg-secrets-", logger }));
});

afterAll(async () => {
  await server?.stop();
});

const secrets = () => ({
  password: PASSWORD,
  "admin token": tokens.admin,
  "member token": tokens.member,
  "viewer token": tokens.viewer,
  "member token's secret": tokens.member.split("_").slice(2).join("_"),
  "a bad token": "osimg_0123456789abcdef_this-is-a-guess-of-a-secret-value-00",
});

describe("secrets", () => {
  it("appear in no log line and no answer of any GET route", async () => {
    const create = await fetch(`${server.url}/api/v1/namespaces/${OWN}/vms`, {
      method: "POST",
      headers: { ...bearer(tokens.member), "content-type": "application/json" },
      body: JSON.stringify({ name: VM, image: ENTRY.OS_NAME, password: PASSWORD }),
    });
    expect(create.status).toBe(201);
    answers.push({ what: "create", text: await create.text() });
    // Refused and failing requests, with tokens in every place a client may put them.
    const bad = secrets()["a bad token"];
    for (const token of [bad, `${bad}x`, tokens.viewer]) {
      const r = await fetch(`${server.url}/api/v1/namespaces/${OWN}/vms`, {
        method: "POST",
        headers: { ...bearer(token), "content-type": "application/json" },
        body: JSON.stringify({ name: "Bad Name", image: "none", password: PASSWORD }),
      });
      answers.push({ what: `refused create (${r.status})`, text: await r.text() });
    }
    for (const protocol of [`bearer.${tokens.member}`, `bearer.${bad}`])
      answers.push({
        what: "console",
        text: (
          await upgrade(`${server.url}/api/v1/namespaces/${OWN}/vms/${VM}/console`, {
            "sec-websocket-protocol": `osimg.console, ${protocol}`,
          })
        ).body,
      });
    answers.push({
      what: "malformed authorization",
      text: await (
        await fetch(`${server.url}/api/v1/whoami`, { headers: { authorization: `Basic ${bad}` } })
      ).text(),
    });

    // Every GET route of the server, with the admin's token, the VM's name and project.
    let gets = 0;
    for (const route of declaredRoutes(server.app)) {
      if (route.method !== "GET" || route.websocket) continue;
      const path = route.url
        .replace(":namespace", OWN)
        .replace(":name", VM)
        .replace(/:(\w+)/g, "absent")
        .replace(/\*$/, "vms");
      const response = await fetch(`${server.url}${path}`, {
        headers: bearer(tokens.admin),
        signal: AbortSignal.timeout(15_000),
      });
      gets++;
      let text: string;
      if (response.headers.get("content-type")?.includes("event-stream")) {
        // The stream's first chunk, then let go.
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        text = Buffer.from((await reader.read()).value ?? []).toString();
        await reader.cancel();
      } else text = await response.text();
      answers.push({
        what: `GET ${path} (${response.status})`,
        text: `${JSON.stringify([...response.headers])}${text}`,
      });
    }
    expect(gets).toBeGreaterThan(12);
    // The VM's own answers do show that it has a password.
    const vm = answers.find((a) => a.what === `GET /api/v1/namespaces/${OWN}/vms/${VM} (200)`);
    expect(JSON.parse(vm?.text.slice(vm.text.indexOf("]{") + 1) ?? "{}").spec.hasPassword).toBe(true);

    const logged = logLines.join("");
    expect(logLines.length).toBeGreaterThan(3);
    for (const [name, secret] of Object.entries(secrets())) {
      expect(logged.includes(secret), `${name} in the logs`).toBe(false);
      for (const a of answers) expect(a.text.includes(secret), `${name} in ${a.what}`).toBe(false);
    }
  });

  it("are stored only as intended: the password in a 0600 file, tokens as salted hashes", async () => {
    const all = files(dataDir);
    const passwordFiles = all.filter((f) => readFileSync(f).includes(PASSWORD));
    expect(passwordFiles).toHaveLength(1);
    expect(passwordFiles[0]).toMatch(/\/password$/);
    expect(statSync(passwordFiles[0] as string).mode & 0o777).toBe(0o600);
    for (const [name, secret] of Object.entries(secrets())) {
      if (name === "password") continue;
      for (const f of all) expect(readFileSync(f).includes(secret), `${name} in ${f}`).toBe(false);
    }
    expect(statSync(join(dataDir, "tokens.json")).mode & 0o777).toBe(0o600);
  });

  it("are redacted wherever they are logged by mistake", () => {
    const lines: string[] = [];
    const log = pino(
      { redact: REDACT },
      new Writable({
        write(chunk, _e, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    log.info({
      req: {
        headers: {
          authorization: "Bearer T1",
          "sec-websocket-protocol": "osimg.console, bearer.T2",
          cookie: "c=T3",
        },
      },
      body: { password: "T4", name: "ok" },
      spec: { password: "T5" },
      principal: { bearerToken: "T6" },
      token: "T7",
    });
    expect(lines.join("")).not.toMatch(/T[1-7]/);
    expect(lines.join("")).toContain('"name":"ok"');
  });
});
