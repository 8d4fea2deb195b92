// Reaching a Kubernetes API server: the client configuration (a kubeconfig file, $KUBECONFIG, or the pod's
// service account, or a caller's bearer token), object references given on the command line, requests the
// typed clients lack, and the errors of the client library read back into the apiserver's Status (code,
// reason, message).
import http from "node:http";
import https from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import { isDns1123Label } from "../util/names.ts";

export interface KubeConfigOptions {
  /** A kubeconfig file; otherwise $KUBECONFIG or ~/.kube/config, or the in-cluster service account in a pod. */
  kubeconfig?: string;
  /** A context of the kubeconfig other than its current one. */
  context?: string;
}

export function loadKubeConfig(
  options: KubeConfigOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): KubeConfig {
  const config = new KubeConfig();
  if (options.kubeconfig) config.loadFromFile(options.kubeconfig);
  else if (env.KUBERNETES_SERVICE_HOST && !env.KUBECONFIG) config.loadFromCluster();
  else config.loadFromDefault();
  if (options.context) {
    if (!config.getContextObject(options.context))
      throw new Error(
        `kubeconfig has no context "${options.context}"; it has: ${config.contexts.map((c) => c.name).join(", ") || "none"}`,
      );
    config.setCurrentContext(options.context);
  }
  if (!config.getCurrentCluster())
    throw new Error(
      "no Kubernetes cluster is configured: pass --kubeconfig PATH, set KUBECONFIG, or run osimg in a pod with a service account",
    );
  return config;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface ObjectRef {
  namespace: string;
  name: string;
}

/** "NAMESPACE/NAME" as given to a flag such as --configmap; the error names the flag and the fix. */
export function parseObjectRef(text: string, flag: string): ObjectRef {
  const parts = text.split("/");
  const [namespace, name] = parts;
  if (parts.length !== 2 || !namespace || !name)
    throw new Error(`${flag} "${text}": expected NAMESPACE/NAME, such as kube-dc/images-configmap`);
  if (!isDns1123Label(namespace))
    throw new Error(
      `${flag} "${text}": namespace "${namespace}" is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)`,
    );
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name))
    throw new Error(
      `${flag} "${text}": name "${name}" is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')`,
    );
  return { namespace, name };
}

/** What the apiserver answered (or why nothing was answered), read from any error of the client library. */
export interface KubeFailure {
  /** The HTTP status; undefined when the server was not reached. */
  code?: number;
  /** The Status reason: NotFound, Conflict, Expired, Forbidden, ... */
  reason?: string;
  message: string;
}

export function kubeFailure(error: unknown): KubeFailure {
  const e = error as { code?: unknown; statusCode?: unknown; body?: unknown; message?: string };
  const code =
    typeof e?.code === "number" ? e.code : typeof e?.statusCode === "number" ? e.statusCode : undefined;
  const status = statusBody(e?.body);
  if (status)
    return { code: status.code ?? code, reason: status.reason, message: status.message ?? `HTTP ${code}` };
  if (code !== undefined)
    return { code, message: `HTTP ${code}${e.message ? `: ${firstLine(e.message)}` : ""}` };
  return { message: firstLine(e?.message ?? String(error)) };
}

export function isStatus(
  value: unknown,
): value is { kind: "Status"; code?: number; reason?: string; message?: string } {
  return value !== null && typeof value === "object" && (value as { kind?: unknown }).kind === "Status";
}

function statusBody(body: unknown): { code?: number; reason?: string; message?: string } | undefined {
  let parsed = body;
  if (typeof body === "string") {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  return isStatus(parsed) ? parsed : undefined;
}

const firstLine = (text: string) => text.split("\n")[0] ?? text;

/**
 * The same cluster, reached as the holder of `token` (the caller's own bearer token): Kubernetes RBAC
 * then decides what the request may do, not osimg's service account.
 */
export function withBearerToken(base: KubeConfig, token: string): KubeConfig {
  const cluster = base.getCurrentCluster();
  if (!cluster) throw new Error("no Kubernetes cluster is configured");
  const config = new KubeConfig();
  config.loadFromClusterAndUser(cluster, { name: "caller", token });
  return config;
}

/** The URL of an API path on the configured cluster (http(s):// or, for WebSockets, ws(s)://). */
export function apiUrl(config: KubeConfig, path: string, websocket = false): URL {
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error("no Kubernetes cluster is configured");
  const url = new URL(cluster.server.replace(/\/+$/, "") + path);
  if (websocket) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

/** An error shaped like the client library's (code and body), so that kubeFailure reads it. */
export class KubeRequestError extends Error {
  override name = "KubeRequestError";
  readonly code: number;
  readonly body: string;

  constructor(code: number, body: string) {
    super(`HTTP ${code}: ${body.slice(0, 200)}`);
    this.code = code;
    this.body = body;
  }
}

/**
 * A request the typed clients have no method for (KubeVirt's subresource API: PUT .../start), with the
 * configuration's credentials and TLS settings. Resolves with the body of a 2xx answer.
 */
export async function kubeRequest(
  config: KubeConfig,
  method: string,
  path: string,
  body?: unknown,
): Promise<string> {
  const url = apiUrl(config, path);
  const options: https.RequestOptions = { method, headers: {} };
  await config.applyToHTTPSOptions(options);
  const text = body === undefined ? undefined : JSON.stringify(body);
  if (text !== undefined)
    Object.assign(options.headers as Record<string, string>, {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(text)),
    });
  const send = url.protocol === "https:" ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const request = send(url, options, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => {
        const answer = Buffer.concat(chunks).toString("utf8");
        const code = response.statusCode ?? 0;
        if (code >= 200 && code < 300) resolve(answer);
        else reject(new KubeRequestError(code, answer));
      });
    });
    request.on("error", reject);
    request.end(text);
  });
}
