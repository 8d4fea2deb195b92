// Fetch safety: the server's fetches reach only public addresses (after DNS and after every redirect)
// unless an allow-list names a mirror; the CLI's reach anything. Loopback is allowed only where a test
// means to, by naming the fixture server's own origin; refused addresses are never connected to.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FetchPolicy, isInternalAddress } from "../src/images/fetch-policy.ts";
import { FetchError, httpRequest } from "../src/images/http.ts";
import { ImageStore, PullError } from "../src/images/store.ts";
import { type FixtureServer, startFixtureServer } from "./support/http-fixture-server.ts";

const dir = mkdtempSync(join(tmpdir(), "osimg-fetch-"));
let server: FixtureServer;
let origin: string;

beforeAll(async () => {
  writeFileSync(join(dir, "hello.txt"), "hello\n");
  server = await startFixtureServer({ root: dir });
  origin = new URL(server.url).host; // 127.0.0.1:PORT
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("expected a refusal");
    },
    (error: unknown) => error as FetchError,
  );

describe("server-side fetch policy", () => {
  it("refuses a redirect to 127.0.0.1, even from an allowed mirror", async () => {
    // Only the fixture server's own origin (host and port) is allowed; the redirect leads elsewhere on
    // loopback, where nothing listens: the refusal comes before any connection.
    server.redirect("/to-loopback", "http://127.0.0.1:9/secret");
    const policy = FetchPolicy.server({ allow: [origin] });
    const ok = await httpRequest(`${server.url}/hello.txt`, { policy });
    expect(ok.status).toBe(200);
    ok.body.resume();
    const error = await refusal(httpRequest(`${server.url}/to-loopback`, { policy }));
    expect(error).toBeInstanceOf(FetchError);
    expect(error.kind).toBe("refused");
    expect(error.message).toMatch(/127\.0\.0\.1.*internal address/);
  });

  it("refuses loopback by default, and a name that resolves to a private address", async () => {
    const error = await refusal(
      httpRequest(`${server.url}/hello.txt`, { policy: FetchPolicy.server({ allow: [] }) }),
    );
    expect(error.kind).toBe("refused");
    const resolver = async (host: string) =>
      host === "mirror.internal.test"
        ? [{ address: "10.20.30.40", family: 4 }]
        : [{ address: "169.254.169.254", family: 4 }];
    const policy = FetchPolicy.server({ allow: [], resolver });
    const named = await refusal(
      httpRequest("http://mirror.internal.test/disk.qcow2", { policy, timeoutMs: 2000 }),
    );
    expect(named.kind).toBe("refused");
    expect(named.message).toMatch(/10\.20\.30\.40/);
    const metadata = await refusal(httpRequest("http://metadata.test/latest/", { policy, timeoutMs: 2000 }));
    expect(metadata.message).toMatch(/169\.254\.169\.254/);
  });

  it("refuses schemes other than http(s) and URLs with credentials", async () => {
    const policy = FetchPolicy.server({ allow: [] });
    expect((await refusal(httpRequest("file:///etc/passwd", { policy }))).kind).toBe("refused");
    expect((await refusal(httpRequest("ftp://example.org/x", { policy }))).kind).toBe("refused");
    expect((await refusal(httpRequest("http://u:p@example.org/x", { policy }))).kind).toBe("refused");
  });

  it("a server-side pull of a loopback URL is refused and stores nothing", async () => {
    const store = new ImageStore({
      root: mkdtempSync(join(tmpdir(), "osimg-fetch-store-")),
      policy: FetchPolicy.server({ allow: [] }),
    });
    const error = await store.pull(`${server.url}/hello.txt`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PullError);
    expect((error as PullError).message).toMatch(/internal address/);
    expect(await store.list()).toEqual([]);
  });

  it("allow-list entries: host, host:port, wildcard and CIDR", async () => {
    // Checked through the connection's DNS lookup itself, without connecting anywhere.
    const resolver = async () => [{ address: "10.1.2.3", family: 4 }];
    const lookup = (policy: FetchPolicy, url: string) =>
      new Promise<string>((resolve, reject) =>
        policy.lookupFor(new URL(url))("mirror.lan", { all: true }, (error, addresses) =>
          error ? reject(error) : resolve(JSON.stringify(addresses)),
        ),
      );
    for (const allow of [["mirror.lan"], ["mirror.lan:80"], ["*.lan"], ["10.0.0.0/8"]])
      expect(
        await lookup(FetchPolicy.server({ allow, resolver }), "http://mirror.lan/x"),
        String(allow),
      ).toContain("10.1.2.3");
    await expect(
      lookup(FetchPolicy.server({ allow: ["mirror.lan:8080"], resolver }), "http://mirror.lan/x"),
    ).rejects.toThrow(/internal address/);
    await expect(
      lookup(FetchPolicy.server({ allow: ["192.168.0.0/16"], resolver }), "http://mirror.lan/x"),
    ).rejects.toThrow(/internal address/);
  });

  it("the CLI's policy fetches loopback", async () => {
    const res = await httpRequest(`${server.url}/hello.txt`, { policy: FetchPolicy.open() });
    expect(res.status).toBe(200);
    res.body.resume();
  });

  it("knows which addresses are internal", () => {
    for (const a of [
      "127.0.0.1",
      "10.0.0.1",
      "172.16.5.4",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "::1",
      "fe80::1",
      "fd00::1",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "64:ff9b::a00:1",
      "224.0.0.1",
    ])
      expect(isInternalAddress(a), a).toBe(true);
    for (const a of ["8.8.8.8", "151.101.1.1", "2606:4700::1111", "::ffff:8.8.8.8"])
      expect(isInternalAddress(a), a).toBe(false);
  });
});
