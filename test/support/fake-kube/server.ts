// A fake Kubernetes API server for tests: plain HTTP on 127.0.0.1 speaking the real REST and watch
// protocol, so product code is exercised through the real @kubernetes/client-node. Behind it: the Cluster
// (CRUD, validation), the KubeVirt/CDI controllers, and controls a real cluster does not have: drop every
// watch, expire history (the next watch gets 410 Gone), restart (same state or wiped), fail requests.
import { EventEmitter } from "node:events";
import { writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { type WebSocket, WebSocketServer } from "ws";
import { Cluster, type ClusterOptions, withTypeMeta } from "./cluster.ts";
import { type ControllerOptions, KubeVirtControllers, type SubresourceAction } from "./controllers.ts";
import { type Authorize, describeAccess, type FakeUser, requestAttributes } from "./rbac.ts";
import { apiVersionOf, type KubeObject, type ResourceType, SUBRESOURCE_GROUP, typeKey } from "./resources.ts";
import { fieldMatcher, labelMatcher, type Matcher } from "./selectors.ts";
import {
  badRequest,
  failure,
  gone,
  KubeError,
  methodNotAllowed,
  type Status,
  success,
  tooLargeResourceVersion,
} from "./status.ts";
import type { StoreEvent } from "./store.ts";

export interface FakeKubeOptions extends ClusterOptions {
  controllers?: ControllerOptions;
  /** Interval of BOOKMARK events on watches that allow them; default 1 s (a real server: about a minute). */
  bookmarkIntervalMs?: number;
  /** How long a request for a future resourceVersion waits before 504 ResourceVersionTooLarge; default 300 ms. */
  tooLargeWaitMs?: number;
  /** How a watch from a compacted resourceVersion fails: an ERROR event in a 200 stream (as the watch cache does) or HTTP 410. */
  goneAs?: "event" | "http";
  /**
   * Authentication: bearer token → user. When given, a request with another token (or none) answers
   * 401 Unauthorized, and TokenReview answers from it. Default: every request is the user "admin".
   */
  users?: Record<string, FakeUser>;
  /** RBAC in one function (see rbac.ts); refused requests answer 403 Forbidden. Default: all allowed. */
  authorize?: Authorize;
}

/** The WebSocket subprotocol of KubeVirt's console and VNC subresources. */
export const KUBEVIRT_STREAM_PROTOCOL = "plain.kubevirt.io";

/** Which requests a control applies to; every given field must match. */
export interface RequestMatch {
  method?: string;
  /** Matches when the URL path contains this string, or matches this expression. */
  path?: string | RegExp;
  /** Only watch requests (true) or only other requests (false); both when undefined. */
  watch?: boolean;
  /** How many matching requests it applies to; default 1. */
  times?: number;
}

export interface FailureRule extends RequestMatch {
  /** The HTTP status answered, with a Status body; default 500. */
  status?: number;
  reason?: string;
  message?: string;
  /** Close the connection without answering instead. */
  reset?: boolean;
}

export interface HeldRequests {
  /** Resolves when all the requests to hold (`times`) have arrived. */
  arrived: Promise<void>;
  /** Lets the held requests (and later matching ones) through. */
  release(): void;
}

type Rule = RequestMatch & { left: number } & (
    | { kind: "fail"; failure: FailureRule }
    | { kind: "hold"; gate: Promise<void>; arrive(): void }
  );

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  watch: boolean;
  status?: number;
  /** The bearer token the request carried. */
  token?: string;
}

interface ActiveWatch {
  response: ServerResponse;
  /** The bearer token the watch was opened with. */
  token: string | undefined;
  bookmarks: boolean;
  sendBookmark(): void;
  close(): void;
}

interface Route {
  group: string;
  version: string;
  namespace?: string;
  resource: string;
  name?: string;
  subresource?: string;
}

const MAX_BODY_BYTES = 3 * 1024 * 1024;
const JSON_TYPE = "application/json";
const INITIAL_EVENTS_END = "k8s.io/initial-events-end";

export class FakeKube {
  cluster: Cluster;
  controllers: KubeVirtControllers;
  readonly requests: RecordedRequest[] = [];
  readonly #options: FakeKubeOptions;
  readonly #watches = new Set<ActiveWatch>();
  readonly #rules: Rule[] = [];
  readonly #podLogs = new Map<string, string>();
  readonly #logEvents = new EventEmitter();
  readonly #streams = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) =>
      protocols.has(KUBEVIRT_STREAM_PROTOCOL) ? KUBEVIRT_STREAM_PROTOCOL : false,
  });
  /** Open console and VNC streams, by VMI namespace/name. */
  readonly #consoles = new Map<string, Set<WebSocket>>();
  #server: Server | undefined;
  /** Every open connection, so that a stop cuts them all, whatever state each is in. */
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #bookmarkTimer: NodeJS.Timeout | undefined;

  constructor(options: FakeKubeOptions = {}) {
    this.#options = options;
    this.cluster = new Cluster(options);
    this.controllers = new KubeVirtControllers(this.cluster, options.controllers);
    this.#logEvents.setMaxListeners(0);
  }

  static async start(options: FakeKubeOptions = {}): Promise<FakeKube> {
    const fake = new FakeKube(options);
    await fake.#listen();
    fake.controllers.start();
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** A client configuration for this server, as `kubectl` would read from a kubeconfig. */
  kubeConfig(namespace = "default", token = "fake-token"): KubeConfig {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: "fake", server: this.url, skipTLSVerify: true }],
      users: [{ name: "tester", token }],
      contexts: [{ name: "fake", cluster: "fake", user: "tester", namespace }],
      currentContext: "fake",
    });
    return config;
  }

  /** Writes a kubeconfig file for this server, for `osimg ... --kubeconfig PATH`. */
  async writeKubeconfig(path: string, namespace = "default", token = "fake-token"): Promise<void> {
    await writeFile(path, this.kubeConfig(namespace, token).exportConfig());
  }

  // --- Controls for tests --------------------------------------------------------------------------

  /** Ends every open watch: abruptly (the connection is cut) or gracefully (the stream ends, as on timeout). */
  dropWatches(mode: "abrupt" | "graceful" = "abrupt"): number {
    const count = this.#watches.size;
    for (const watch of [...this.#watches]) {
      if (mode === "abrupt") watch.response.socket?.destroy();
      else watch.close();
    }
    return count;
  }

  /** Forgets the change history: every watch from an older resourceVersion gets 410 Gone. */
  expireHistory(): void {
    this.cluster.store.expireHistory();
  }

  /** Sends a BOOKMARK now on every watch that allows them. */
  sendBookmarks(): void {
    for (const watch of this.#watches) if (watch.bookmarks) watch.sendBookmark();
  }

  /** Fails the next matching requests (see FailureRule). */
  failNext(rule: FailureRule): void {
    this.#rules.push({ ...rule, left: rule.times ?? 1, kind: "fail", failure: rule });
  }

  /** Holds the next matching requests until released: for changes that must land while a client waits. */
  holdNext(match: RequestMatch): HeldRequests {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let arrive = () => {};
    let waiting = match.times ?? 1;
    const arrived = new Promise<void>((resolve) => {
      arrive = () => {
        if (--waiting === 0) resolve();
      };
    });
    const rule: Rule = { ...match, left: match.times ?? 1, kind: "hold", gate, arrive };
    this.#rules.push(rule);
    return {
      arrived,
      release: () => {
        const index = this.#rules.indexOf(rule);
        if (index !== -1) this.#rules.splice(index, 1);
        release();
      },
    };
  }

  /** Number of watch streams open now. */
  get openWatches(): number {
    return this.#watches.size;
  }

  /** Watch streams open now that were opened with this bearer token. */
  openWatchesOf(token: string): number {
    return [...this.#watches].filter((w) => w.token === token).length;
  }

  /**
   * Stops and starts the server on the same port. The state survives (its history does not: a new watch
   * cache) unless `wipe`, which starts an empty cluster whose resourceVersions begin again low.
   */
  async restart(options: { wipe?: boolean; downMs?: number } = {}): Promise<void> {
    await this.#stop();
    if (options.wipe) {
      this.controllers.stop();
      this.cluster = new Cluster(this.#options);
      this.controllers = new KubeVirtControllers(this.cluster, this.#options.controllers);
      this.controllers.start();
    } else this.cluster.store.expireHistory();
    if (options.downMs) await new Promise((resolve) => setTimeout(resolve, options.downMs));
    await this.#listen(this.#port);
  }

  async close(): Promise<void> {
    this.controllers.stop();
    await this.#stop();
  }

  setPodLog(namespace: string, name: string, text: string): void {
    this.#podLogs.set(`${namespace}/${name}`, text);
  }

  /** Console and VNC streams open now to a VMI. */
  openConsoles(namespace: string, name: string): number {
    return this.#consoles.get(`${namespace}/${name}`)?.size ?? 0;
  }

  /** Cuts every console and VNC stream of a VMI, as when its virt-launcher goes away. */
  closeConsoles(namespace: string, name: string): void {
    for (const socket of this.#consoles.get(`${namespace}/${name}`) ?? []) socket.terminate();
  }

  appendPodLog(namespace: string, name: string, text: string): void {
    const key = `${namespace}/${name}`;
    this.#podLogs.set(key, (this.#podLogs.get(key) ?? "") + text);
    this.#logEvents.emit(key, text);
  }

  // --- HTTP ------------------------------------------------------------------------------------------

  async #listen(port = 0): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on("upgrade", (req, socket, head) => this.#upgrade(req, socket as Socket, head));
    server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    this.#bookmarkTimer = setInterval(() => this.sendBookmarks(), this.#options.bookmarkIntervalMs ?? 1000);
    this.#bookmarkTimer.unref();
  }

  async #stop(): Promise<void> {
    clearInterval(this.#bookmarkTimer);
    for (const open of this.#consoles.values()) for (const socket of open) socket.terminate();
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === "true" || query.watch === "1";
    const token = bearerToken(req);
    const record: RecordedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query,
      watch,
      ...(token ? { token } : {}),
    };
    this.requests.push(record);
    res.on("finish", () => {
      record.status = res.statusCode;
    });
    const forbidden = this.#forbidden(record);
    if (forbidden) {
      this.#send(res, forbidden.status.code, forbidden.status);
      return;
    }
    const rule = this.#matchRule(record);
    if (rule?.kind === "hold") {
      rule.arrive();
      await rule.gate;
    } else if (rule?.kind === "fail") {
      const injected = rule.failure;
      if (injected.reset) {
        req.socket.destroy();
        return;
      }
      const code = injected.status ?? 500;
      this.#send(
        res,
        code,
        failure(code, injected.reason ?? "InternalError", injected.message ?? "injected failure"),
      );
      return;
    }
    try {
      await this.#route(req, res, url, watch);
    } catch (error) {
      const status =
        error instanceof KubeError
          ? error.status
          : failure(500, "InternalError", `Internal error occurred: ${(error as Error).message}`);
      if (!res.headersSent) this.#send(res, status.code, status);
      else res.destroy();
    }
  }

  /** The user a request's token names: undefined (401) when users are configured and it names none. */
  #userOf(token: string | undefined): FakeUser | undefined {
    const users = this.#options.users;
    if (!users) return { username: "admin", groups: ["system:masters"] };
    return token === undefined ? undefined : users[token];
  }

  /** The refusal of a request the users and authorize options do not allow, or undefined. */
  #forbidden(request: RecordedRequest): KubeError | undefined {
    const user = this.#userOf(request.token);
    if (!user) return new KubeError(401, "Unauthorized", "Unauthorized");
    const authorize = this.#options.authorize;
    const attributes = requestAttributes(request.method, request.path, request.watch);
    if (!authorize || !attributes) return undefined;
    if (authorize({ ...attributes, user: user.username, groups: user.groups ?? [] })) return undefined;
    return new KubeError(403, "Forbidden", describeAccess(user.username, attributes), {
      name: attributes.name,
      group: attributes.group,
      kind: attributes.resource,
    });
  }

  /** TokenReview and SubjectAccessReview: answered from the users and authorize options. */
  async #review(req: IncomingMessage, res: ServerResponse, kind: "token" | "access"): Promise<void> {
    const body = (await readJson(req)) as {
      spec?: {
        token?: string;
        user?: string;
        groups?: string[];
        resourceAttributes?: Partial<
          Record<"verb" | "group" | "resource" | "subresource" | "namespace" | "name", string>
        >;
      };
    };
    const spec = body.spec ?? {};
    let status: Record<string, unknown>;
    if (kind === "token") {
      const user = spec.token === undefined ? undefined : this.#options.users?.[spec.token];
      status = user
        ? { authenticated: true, user: { username: user.username, groups: user.groups ?? [] } }
        : { authenticated: false, error: "invalid bearer token" };
    } else {
      const a = spec.resourceAttributes ?? {};
      const allowed =
        this.#options.authorize?.({
          user: spec.user ?? "",
          groups: spec.groups ?? [],
          verb: a.verb ?? "",
          group: a.group ?? "",
          resource: a.resource ?? "",
          ...(a.subresource ? { subresource: a.subresource } : {}),
          ...(a.namespace ? { namespace: a.namespace } : {}),
          ...(a.name ? { name: a.name } : {}),
        }) ?? true;
      status = { allowed, ...(allowed ? {} : { reason: "no RBAC rule allows it" }) };
    }
    const group = kind === "token" ? "authentication.k8s.io/v1" : "authorization.k8s.io/v1";
    this.#send(res, 201, {
      apiVersion: group,
      kind: kind === "token" ? "TokenReview" : "SubjectAccessReview",
      metadata: { creationTimestamp: null },
      spec,
      status,
    });
  }

  /** KubeVirt's console and vnc subresources: WebSocket streams to a running VMI (a fake that echoes). */
  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const url = new URL(req.url ?? "/", "http://fake");
    const token = bearerToken(req);
    const record: RecordedRequest = {
      method: "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      watch: false,
      ...(token ? { token } : {}),
    };
    this.requests.push(record);
    const target = this.#streamTarget(record);
    if (target instanceof KubeError) {
      record.status = target.status.code;
      const body = JSON.stringify(target.status);
      socket.end(
        `HTTP/1.1 ${target.status.code} ${target.status.reason}\r\ncontent-type: ${JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    const { namespace, name, kind } = target;
    this.#streams.handleUpgrade(req, socket, head, (ws) => {
      record.status = 101;
      const key = `${namespace}/${name}`;
      let open = this.#consoles.get(key);
      if (!open) {
        open = new Set();
        this.#consoles.set(key, open);
      }
      open.add(ws);
      ws.on("close", () => open.delete(ws));
      // A serial console shows a login prompt; VNC starts with the RFB version, as a server does.
      ws.send(Buffer.from(kind === "vnc" ? "RFB 003.008\n" : `\r\n${name} login: `));
      ws.on("message", (data: Buffer) => ws.send(data, { binary: true }));
    });
  }

  /** The VMI a console or VNC request is for, or why it is refused. */
  #streamTarget(
    record: RecordedRequest,
  ): { namespace: string; name: string; kind: "console" | "vnc" } | KubeError {
    const forbidden = this.#forbidden(record);
    if (forbidden) return forbidden;
    const match =
      /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/([^/]+)\/virtualmachineinstances\/([^/]+)\/(console|vnc)$/.exec(
        record.path,
      );
    if (!match) return new KubeError(404, "NotFound", "the server could not find the requested resource");
    const [, namespace, name, kind] = match as unknown as [string, string, string, "console" | "vnc"];
    const vmi = this.cluster.store.get(typeKey(this.controllers.vmi), namespace, name);
    if (!vmi)
      return new KubeError(404, "NotFound", `virtualmachineinstances.kubevirt.io "${name}" not found`);
    if ((vmi.status as { phase?: string } | undefined)?.phase !== "Running")
      return new KubeError(
        400,
        "BadRequest",
        "Unable to connect to VirtualMachineInstance because phase is not Running",
      );
    return { namespace, name, kind };
  }

  #matchRule(request: RecordedRequest): Rule | undefined {
    const index = this.#rules.findIndex(
      (r) =>
        (r.method === undefined || r.method.toUpperCase() === request.method) &&
        (r.watch === undefined || r.watch === request.watch) &&
        (r.path === undefined ||
          (typeof r.path === "string" ? request.path.includes(r.path) : r.path.test(request.path))),
    );
    if (index === -1) return undefined;
    const rule = this.#rules[index] as Rule;
    if (--rule.left <= 0) this.#rules.splice(index, 1);
    return rule;
  }

  #send(res: ServerResponse, code: number, body: unknown): void {
    const text = body === undefined ? "" : JSON.stringify(body);
    res.writeHead(code, { "content-type": JSON_TYPE, "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  async #route(req: IncomingMessage, res: ServerResponse, url: URL, watch: boolean): Promise<void> {
    const path = url.pathname.replace(/\/+$/, "");
    const segments = path
      .split("/")
      .filter((s) => s !== "")
      .map(decodeURIComponent);
    const method = req.method ?? "GET";
    if (["/healthz", "/readyz", "/livez"].includes(path)) {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      return;
    }
    if (path === "/version")
      return this.#send(res, 200, {
        major: "1",
        minor: "33",
        gitVersion: "v1.33.0-fake",
        platform: "linux/amd64",
      });
    if (path === "/api")
      return this.#send(res, 200, { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] });
    if (path === "/apis") return this.#send(res, 200, this.#groupList());
    if (segments[0] === "apis" && segments.length === 2) {
      const group = this.#groupList().groups.find((g) => g.name === segments[1]);
      if (!group) throw new KubeError(404, "NotFound", "the server could not find the requested resource");
      return this.#send(res, 200, { kind: "APIGroup", apiVersion: "v1", ...group });
    }
    const core = segments[0] === "api";
    const group = core ? "" : (segments[1] ?? "");
    const version = core ? (segments[1] ?? "") : (segments[2] ?? "");
    const rest = segments.slice(core ? 2 : 3);
    if (segments[0] !== "api" && segments[0] !== "apis")
      throw new KubeError(404, "NotFound", "the server could not find the requested resource");
    if (rest.length === 0) return this.#send(res, 200, this.#resourceList(group, version));
    if (method === "POST" && group === "authentication.k8s.io" && rest[0] === "tokenreviews")
      return this.#review(req, res, "token");
    if (method === "POST" && group === "authorization.k8s.io" && rest[0] === "subjectaccessreviews")
      return this.#review(req, res, "access");
    if (group === SUBRESOURCE_GROUP.group) return this.#kubevirtSubresource(req, res, rest);
    const route = this.#parseRoute(group, version, rest);
    const type = this.cluster.find(route.group, route.version, route.resource);
    if (!type) throw new KubeError(404, "NotFound", "the server could not find the requested resource");
    const query = Object.fromEntries(url.searchParams);
    const dryRun = query.dryRun === "All";
    const ns = type.namespaced ? route.namespace : undefined;
    if (type.namespaced && route.namespace === undefined && method !== "GET")
      throw methodNotAllowed(`the server does not allow this method on the requested resource`);

    if (route.name === undefined) {
      if (method === "GET" && watch) return this.#watch(req, res, type, ns, query);
      if (method === "GET") {
        await this.#waitForResourceVersion(query.resourceVersion, query.resourceVersionMatch);
        const list = this.cluster.list(type, ns, {
          labelSelector: query.labelSelector,
          fieldSelector: query.fieldSelector,
          limit: query.limit ? Number(query.limit) : undefined,
          continue: query.continue,
        });
        const metadata: Record<string, unknown> = { resourceVersion: list.resourceVersion };
        if (list.continue) metadata.continue = list.continue;
        if (list.remainingItemCount !== undefined) metadata.remainingItemCount = list.remainingItemCount;
        return this.#send(res, 200, {
          kind: `${type.kind}List`,
          apiVersion: apiVersionOf(type),
          metadata,
          items: list.items,
        });
      }
      if (method === "POST") {
        const created = this.cluster.create(type, ns, await readJson(req), { dryRun });
        return this.#send(res, 201, withTypeMeta(type, created));
      }
      if (method === "DELETE") {
        const deleted = this.cluster.deleteCollection(type, ns, {
          labelSelector: query.labelSelector,
          fieldSelector: query.fieldSelector,
          dryRun,
        });
        return this.#send(res, 200, {
          kind: `${type.kind}List`,
          apiVersion: apiVersionOf(type),
          metadata: { resourceVersion: deleted.resourceVersion },
          items: deleted.items,
        });
      }
      throw methodNotAllowed(`${method} is not supported on a collection`);
    }

    const name = route.name;
    const sub = route.subresource;
    if (sub === "log" && type.kind === "Pod" && method === "GET")
      return this.#podLog(res, type, ns as string, name, query);
    if (sub !== undefined && !(sub === "status" && type.statusSubresource))
      throw new KubeError(404, "NotFound", "the server could not find the requested resource");
    const subresource = sub === "status" ? ("status" as const) : undefined;
    if (method === "GET") return this.#send(res, 200, withTypeMeta(type, this.cluster.get(type, ns, name)));
    if (method === "PUT") {
      const updated = this.cluster.update(type, ns, name, await readJson(req), { dryRun, subresource });
      return this.#send(res, 200, withTypeMeta(type, updated));
    }
    if (method === "PATCH") {
      const contentType = req.headers["content-type"] ?? "";
      const patched = this.cluster.patch(type, ns, name, await readJson(req), contentType, {
        dryRun,
        subresource,
      });
      return this.#send(res, 200, withTypeMeta(type, patched));
    }
    if (method === "DELETE" && subresource === undefined) {
      const body = (await readJson(req, true)) as
        | { preconditions?: { uid?: string; resourceVersion?: string } }
        | undefined;
      const deleted = this.cluster.delete(type, ns, name, { dryRun, preconditions: body?.preconditions });
      // Built-in types answer a Status, pods and custom resources the deleted object.
      if (type.custom || type.kind === "Pod") return this.#send(res, 200, deleted);
      return this.#send(
        res,
        200,
        success({ name, group: type.group, kind: type.resource, uid: deleted.metadata.uid }),
      );
    }
    throw methodNotAllowed(`${method} is not supported on ${type.resource}${sub ? `/${sub}` : ""}`);
  }

  #parseRoute(group: string, version: string, rest: string[]): Route {
    // namespaces/{ns}/{resource}/... unless the third segment is not a namespaced resource (namespaces/{name}/status).
    if (rest[0] === "namespaces" && rest.length >= 3) {
      const inner = this.cluster.find(group, version, rest[2] as string);
      if (inner?.namespaced)
        return {
          group,
          version,
          namespace: rest[1],
          resource: rest[2] as string,
          name: rest[3],
          subresource: rest[4],
        };
    }
    return { group, version, resource: rest[0] as string, name: rest[1], subresource: rest[2] };
  }

  /** A list or watch at a resourceVersion the server has not reached waits a little, then 504 like the watch cache. */
  async #waitForResourceVersion(requested: string | undefined, match?: string): Promise<void> {
    if (match === "Exact")
      throw badRequest("resourceVersionMatch=Exact is not supported by the fake API server");
    if (!requested || requested === "0") return;
    const rv = Number(requested);
    if (!Number.isInteger(rv) || rv < 0) throw badRequest(`invalid resource version: ${requested}`);
    const deadline = Date.now() + (this.#options.tooLargeWaitMs ?? 300);
    while (this.cluster.store.resourceVersion < rv) {
      if (Date.now() >= deadline) throw tooLargeResourceVersion(rv, this.cluster.store.resourceVersion);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async #watch(
    req: IncomingMessage,
    res: ServerResponse,
    type: ResourceType,
    namespace: string | undefined,
    query: Record<string, string>,
  ): Promise<void> {
    const labels = labelMatcher(query.labelSelector);
    const fields = fieldMatcher(query.fieldSelector, type.kind);
    const matches: Matcher = (o) =>
      (namespace === undefined || o.metadata.namespace === namespace) && labels(o) && fields(o);
    const requested = query.resourceVersion;
    const store = this.cluster.store;
    let replay: { type: string; object: KubeObject }[] = [];
    let expired = false;
    const initial = !requested || requested === "0";
    if (initial) {
      replay = store
        .list(typeKey(type), namespace)
        .filter(matches)
        .map((object) => ({ type: "ADDED", object: withTypeMeta(type, object) }));
    } else {
      await this.#waitForResourceVersion(requested);
      const events = store.since(Number(requested));
      if (events === "expired") {
        if (this.#options.goneAs === "http")
          throw gone(`too old resource version: ${requested} (${store.oldestResourceVersion})`);
        expired = true;
      } else {
        replay = events
          .filter((e) => e.resource === typeKey(type))
          .flatMap((e) => translate(type, e, matches) ?? []);
      }
    }
    res.writeHead(200, {
      "content-type": JSON_TYPE,
      "transfer-encoding": "chunked",
      "cache-control": "no-cache",
    });
    // Headers go out now, like the apiserver's: a client's watch call returns before the first event.
    res.flushHeaders();
    const write = (event: unknown) => {
      if (!res.writableEnded) res.write(`${JSON.stringify(event)}\n`);
    };
    if (expired) {
      write({
        type: "ERROR",
        object: failure(
          410,
          "Expired",
          `too old resource version: ${requested} (${store.oldestResourceVersion})`,
        ),
      });
      res.end();
      return;
    }
    const bookmarks = query.allowWatchBookmarks === "true" || query.allowWatchBookmarks === "1";
    const bookmark = (annotations?: Record<string, string>) =>
      write({
        type: "BOOKMARK",
        object: {
          kind: type.kind,
          apiVersion: apiVersionOf(type),
          metadata: {
            resourceVersion: String(this.cluster.store.resourceVersion),
            ...(annotations ? { annotations } : {}),
          },
        },
      });
    for (const event of replay) write(event);
    if (initial && bookmarks && query.sendInitialEvents === "true")
      bookmark({ [INITIAL_EVENTS_END]: "true" });
    const unsubscribe = store.subscribe((event) => {
      if (event.resource !== typeKey(type)) return;
      const translated = translate(type, event, matches);
      if (translated) write(translated);
    });
    const timeout =
      query.timeoutSeconds !== undefined
        ? setTimeout(() => active.close(), Number(query.timeoutSeconds) * 1000)
        : undefined;
    const active: ActiveWatch = {
      response: res,
      token: bearerToken(req),
      bookmarks,
      sendBookmark: () => bookmark(),
      close: () => {
        if (!res.writableEnded) res.end();
      },
    };
    this.#watches.add(active);
    const cleanup = () => {
      unsubscribe();
      clearTimeout(timeout);
      this.#watches.delete(active);
    };
    res.on("close", cleanup);
    req.on("close", cleanup);
  }

  #podLog(
    res: ServerResponse,
    type: ResourceType,
    namespace: string,
    name: string,
    query: Record<string, string>,
  ): void {
    const pod = this.cluster.get(type, namespace, name);
    const key = `${namespace}/${name}`;
    let text = this.#podLogs.get(key) ?? "";
    if (query.tailLines !== undefined) {
      const lines = text.split("\n");
      const trailing = lines.at(-1) === "" ? lines.pop() : undefined;
      text = lines.slice(-Number(query.tailLines)).join("\n") + (trailing === "" ? "\n" : "");
    }
    res.writeHead(200, { "content-type": "text/plain", "transfer-encoding": "chunked" });
    res.flushHeaders();
    if (text !== "") res.write(text);
    // A finished container's log has no more to follow (as the kubelet answers).
    const phase = (pod.status as { phase?: string } | undefined)?.phase;
    if (query.follow !== "true" || phase === "Succeeded" || phase === "Failed") {
      res.end();
      return;
    }
    const onText = (chunk: string) => res.write(chunk);
    const unsubscribe = this.cluster.store.subscribe((event) => {
      if (
        event.resource !== typeKey(type) ||
        `${event.object.metadata.namespace}/${event.object.metadata.name}` !== key
      )
        return;
      const phase = (event.object.status as { phase?: string } | undefined)?.phase;
      if (event.type === "DELETED" || phase === "Succeeded" || phase === "Failed") res.end();
    });
    this.#logEvents.on(key, onText);
    res.on("close", () => {
      this.#logEvents.off(key, onText);
      unsubscribe();
    });
  }

  async #kubevirtSubresource(req: IncomingMessage, res: ServerResponse, rest: string[]): Promise<void> {
    const [namespaces, namespace, kind, name, action] = rest;
    const actions: SubresourceAction[] = ["start", "stop", "restart", "pause", "unpause"];
    if (
      namespaces !== "namespaces" ||
      !namespace ||
      !name ||
      (kind !== "virtualmachines" && kind !== "virtualmachineinstances") ||
      !actions.includes(action as SubresourceAction) ||
      rest.length !== 5
    )
      throw new KubeError(404, "NotFound", "the server could not find the requested resource");
    if (req.method !== "PUT") throw methodNotAllowed(`${action} accepts PUT only`);
    await readJson(req, true);
    this.controllers.act(kind, namespace, name, action as SubresourceAction);
    res.writeHead(action === "pause" || action === "unpause" ? 200 : 202).end();
  }

  #groupList() {
    const versions = new Map<string, Set<string>>();
    for (const t of this.cluster.types.values()) {
      if (t.group === "") continue;
      if (!versions.has(t.group)) versions.set(t.group, new Set());
      versions.get(t.group)?.add(t.version);
    }
    versions.set(SUBRESOURCE_GROUP.group, new Set([SUBRESOURCE_GROUP.version]));
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: [...versions].map(([name, vs]) => {
        const list = [...vs].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions: list, preferredVersion: list[0] };
      }),
    };
  }

  #resourceList(group: string, version: string) {
    const verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
    const resources = [...this.cluster.types.values()]
      .filter((t) => t.group === group && t.version === version)
      .flatMap((t) => {
        const main = {
          name: t.resource,
          singularName: t.singular,
          namespaced: t.namespaced,
          kind: t.kind,
          verbs,
          ...(t.shortNames ? { shortNames: t.shortNames } : {}),
        };
        const subs = [
          ...(t.statusSubresource
            ? [
                {
                  name: `${t.resource}/status`,
                  singularName: "",
                  namespaced: t.namespaced,
                  kind: t.kind,
                  verbs: ["get", "patch", "update"],
                },
              ]
            : []),
          ...(t.kind === "Pod"
            ? [{ name: "pods/log", singularName: "", namespaced: true, kind: "Pod", verbs: ["get"] }]
            : []),
        ];
        return [main, ...subs];
      });
    if (group === SUBRESOURCE_GROUP.group && version === SUBRESOURCE_GROUP.version) {
      for (const kind of ["virtualmachines", "virtualmachineinstances"])
        for (const action of ["start", "stop", "restart", "pause", "unpause"])
          resources.push({
            name: `${kind}/${action}`,
            singularName: "",
            namespaced: true,
            kind: "",
            verbs: ["update"],
          });
      for (const stream of ["console", "vnc"])
        resources.push({
          name: `virtualmachineinstances/${stream}`,
          singularName: "",
          namespaced: true,
          kind: "",
          verbs: ["get"],
        });
    }
    if (resources.length === 0)
      throw new KubeError(404, "NotFound", "the server could not find the requested resource");
    return {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: group === "" ? version : `${group}/${version}`,
      resources,
    };
  }
}

/** A store event as one watcher sees it: objects moving into or out of its selection are ADDED or DELETED. */
function translate(
  type: ResourceType,
  event: StoreEvent,
  matches: Matcher,
): { type: string; object: KubeObject } | undefined {
  const object = withTypeMeta(type, event.object);
  const now = matches(event.object);
  const before = event.previous !== undefined && matches(event.previous);
  if (event.type === "ADDED") return now ? { type: "ADDED", object } : undefined;
  if (event.type === "DELETED") return before ? { type: "DELETED", object } : undefined;
  if (now && before) return { type: "MODIFIED", object };
  if (now) return { type: "ADDED", object };
  if (before) return { type: "DELETED", object };
  return undefined;
}

function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  return header?.startsWith("Bearer ") ? header.slice("Bearer ".length) : undefined;
}

async function readJson(req: IncomingMessage, optional = false): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw new KubeError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728");
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") {
    if (optional) return undefined;
    throw badRequest("the request body is empty");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(error as Error).message}`);
  }
}

export type { Status };
