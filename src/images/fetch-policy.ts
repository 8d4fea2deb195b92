// Which URLs a fetch may reach. The CLI fetches what its user asks; the server fetches URLs that catalog
// authors and API callers chose, so it takes only http(s), and refuses addresses inside the host's
// networks (loopback, link-local, private, CGNAT, multicast…) after DNS resolution and after every
// redirect, unless an allow-list entry names the mirror. The check sits in the socket's DNS lookup, so
// the address checked is the address connected to (no window for DNS rebinding).
import { lookup as dnsLookup } from "node:dns";
import { BlockList, isIP, type LookupFunction } from "node:net";

export class FetchRefused extends Error {
  readonly code = "refused";
}

const BLOCKED_V4: [string, number][] = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
];
const BLOCKED_V6: [string, number][] = [
  ["::", 128],
  ["::1", 128],
  ["fc00::", 7],
  ["fe80::", 10],
  ["fec0::", 10],
  ["ff00::", 8],
  ["2001:db8::", 32],
  ["100::", 64],
];

const blocked = new BlockList();
for (const [net, prefix] of BLOCKED_V4) blocked.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of BLOCKED_V6) blocked.addSubnet(net, prefix, "ipv6");

/** The 16 bytes of an IPv6 address. */
function v6Bytes(address: string): number[] | undefined {
  let text = address.split("%")[0] ?? "";
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (v4Tail) {
    tail = (v4Tail[1] as string).split(".").map(Number);
    text = `${text.slice(0, -(v4Tail[1] as string).length)}0:0`;
  }
  const [left = "", right] = text.split("::");
  const groups = (s: string) => (s === "" ? [] : s.split(":").map((g) => Number.parseInt(g, 16)));
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const fill = right === undefined ? [] : new Array(8 - l.length - r.length).fill(0);
  const all = [...l, ...fill, ...r];
  if (all.length !== 8 || all.some((g) => Number.isNaN(g))) return undefined;
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (v4Tail) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address. */
function embeddedV4(address: string): string | undefined {
  const b = v6Bytes(address);
  if (!b) return undefined;
  const mapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  const nat64 =
    b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && b.slice(4, 12).every((x) => x === 0);
  return mapped || nat64 ? b.slice(12).join(".") : undefined;
}

/** True for addresses inside the host's own networks: loopback, private, link-local and the like. */
export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, "ipv4");
  if (family === 6) {
    const v4 = embeddedV4(address);
    if (v4) return blocked.check(v4, "ipv4");
    return blocked.check(address, "ipv6");
  }
  return true;
}

interface AllowRule {
  text: string;
  host?: string;
  wildcard?: boolean;
  port?: number;
  subnet?: BlockList;
}

function parseRule(text: string): AllowRule {
  const t = text.trim();
  if (t.includes("/")) {
    const [net = "", prefix = ""] = t.split("/");
    const family = isIP(net);
    if (!family || !/^\d+$/.test(prefix)) throw new Error(`allow-list entry "${t}" is not a CIDR range`);
    const subnet = new BlockList();
    subnet.addSubnet(net, Number(prefix), family === 4 ? "ipv4" : "ipv6");
    return { text: t, subnet };
  }
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (bracket)
    return {
      text: t,
      host: (bracket[1] as string).toLowerCase(),
      ...(bracket[2] ? { port: Number(bracket[2]) } : {}),
    };
  const hostPort = /^([^:]+):(\d+)$/.exec(t);
  const host = (hostPort ? (hostPort[1] as string) : t).toLowerCase();
  const wildcard = host.startsWith("*.");
  return {
    text: t,
    host: wildcard ? host.slice(2) : host,
    wildcard,
    ...(hostPort ? { port: Number(hostPort[2]) } : {}),
  };
}

export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (host) =>
  new Promise((resolve, reject) =>
    dnsLookup(host, { all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses))),
  );

export interface FetchPolicyOptions {
  /** Refuse internal addresses (the server's default); false lets anything through (the CLI's). */
  refuseInternal: boolean;
  /** Hosts ("mirror.lan", "*.corp.example", "10.1.2.3:8080") or CIDR ranges that may be internal. */
  allow?: readonly string[];
  maxRedirects?: number;
  /** The largest body a download may have, in bytes. */
  maxBytes?: number;
  /** Name resolution (tests put names on addresses no server listens on). */
  resolver?: Resolver;
}

export class FetchPolicy {
  readonly refuseInternal: boolean;
  readonly maxRedirects: number;
  readonly maxBytes: number;
  readonly allow: readonly AllowRule[];
  readonly #resolver: Resolver;

  constructor(options: FetchPolicyOptions) {
    this.refuseInternal = options.refuseInternal;
    this.maxRedirects = options.maxRedirects ?? (options.refuseInternal ? 5 : 10);
    this.maxBytes = options.maxBytes ?? 256 * 2 ** 30;
    this.allow = (options.allow ?? []).filter((a) => a.trim() !== "").map(parseRule);
    this.#resolver = options.resolver ?? systemResolver;
  }

  /** The CLI's policy: any http(s) URL the user names. */
  static open(options: Partial<FetchPolicyOptions> = {}): FetchPolicy {
    return new FetchPolicy({ ...options, refuseInternal: false });
  }

  /** The server's policy: public addresses only, plus the allow-list ($OSIMG_FETCH_ALLOW, comma-separated). */
  static server(
    options: Partial<FetchPolicyOptions> = {},
    env: NodeJS.ProcessEnv = process.env,
  ): FetchPolicy {
    const allow = options.allow ?? (env.OSIMG_FETCH_ALLOW ?? "").split(",");
    return new FetchPolicy({ ...options, allow, refuseInternal: true });
  }

  #hostAllowed(url: URL): boolean {
    const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    return this.allow.some(
      (r) =>
        r.host !== undefined &&
        (r.port === undefined || r.port === port) &&
        (r.wildcard ? host.endsWith(`.${r.host}`) : host === r.host),
    );
  }

  #addressAllowed(address: string): boolean {
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    return this.allow.some((r) => r.subnet?.check(address, family));
  }

  /** Refuses a URL before any connection: scheme, and an IP literal host. */
  checkUrl(url: URL): void {
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new FetchRefused(`only http and https URLs are fetched, not ${url.protocol.replace(/:$/, "")}:`);
    if (url.username || url.password) throw new FetchRefused("URLs with credentials are not fetched");
    if (!this.refuseInternal) return;
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (isIP(host)) this.#checkAddress(url, host);
  }

  #checkAddress(url: URL, address: string): void {
    if (!this.refuseInternal || !isInternalAddress(address)) return;
    if (this.#hostAllowed(url) || this.#addressAllowed(address)) return;
    throw new FetchRefused(
      `refused to fetch ${url.origin}: ${url.hostname} is ${address}, an internal address (loopback, private or link-local); ` +
        "add it to the allow-list (OSIMG_FETCH_ALLOW) if it is a trusted mirror",
    );
  }

  /** The DNS lookup for a connection to this URL: resolves, then refuses internal addresses. */
  lookupFor(url: URL): LookupFunction {
    return (hostname, options, callback) => {
      const done = callback as (
        error: NodeJS.ErrnoException | null,
        address: string | { address: string; family: number }[],
        family?: number,
      ) => void;
      this.#resolver(hostname)
        .then((addresses) => {
          if (addresses.length === 0)
            throw Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" });
          for (const a of addresses) this.#checkAddress(url, a.address);
          const wanted =
            options.family === 4 || options.family === 6
              ? addresses.filter((a) => a.family === options.family)
              : addresses;
          const list = wanted.length > 0 ? wanted : addresses;
          if (options.all) done(null, list);
          else done(null, (list[0] as { address: string }).address, (list[0] as { family: number }).family);
        })
        .catch((error: NodeJS.ErrnoException) => done(error, ""));
    };
  }
}
