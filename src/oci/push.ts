// Pushing an image from an OCI layout to a registry through the OCI distribution API: each blob is
// checked with HEAD and, when missing, uploaded (POST an upload session, PUT the bytes with the digest),
// then the manifest is PUT under the tag. Registries that want a token (WWW-Authenticate: Bearer) get one
// from their realm; credentials come from OSIMG_REGISTRY_USERNAME / OSIMG_REGISTRY_PASSWORD.
import { createReadStream } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { blobPath, type Descriptor, MEDIA_TYPES, readLayoutImage } from "./layout.ts";

export interface ImageReference {
  registry: string;
  repository: string;
  tag: string;
}

/** REGISTRY/REPOSITORY[:TAG]: the first part is a registry when it has a dot, a colon or is localhost. */
export function parseReference(text: string): ImageReference {
  const at = text.indexOf("/");
  const first = at === -1 ? "" : text.slice(0, at);
  if (at === -1 || !(first.includes(".") || first.includes(":") || first === "localhost"))
    throw new Error(
      `"${text}" names no registry: write it as REGISTRY/REPOSITORY:TAG, e.g. 127.0.0.1:5000/os/debian:12`,
    );
  const rest = text.slice(at + 1);
  const colon = rest.lastIndexOf(":");
  const repository = colon === -1 ? rest : rest.slice(0, colon);
  const tag = colon === -1 ? "latest" : rest.slice(colon + 1);
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)*$/.test(repository))
    throw new Error(`"${repository}" is not a repository name (lower case, / between parts)`);
  if (!/^[\w][\w.-]{0,127}$/.test(tag)) throw new Error(`"${tag}" is not a tag`);
  return { registry: first, repository, tag };
}

export interface PushOptions {
  layout: string;
  /** The tag of the image in the layout. */
  tag: string;
  reference: string;
  /** false: plain http (a local registry), like skopeo's --dest-tls-verify=false. */
  tlsVerify: boolean;
  log?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface PushResult {
  reference: string;
  digest: string;
  uploaded: number;
  skipped: number;
}

interface Response {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

class RegistryClient {
  readonly #base: string;
  readonly #registry: string;
  readonly #repository: string;
  readonly #basic: string | undefined;
  #authorization: string | undefined;

  constructor(reference: ImageReference, tlsVerify: boolean, env: NodeJS.ProcessEnv) {
    this.#base = `${tlsVerify ? "https" : "http"}://${reference.registry}`;
    this.#registry = reference.registry;
    this.#repository = reference.repository;
    const user = env.OSIMG_REGISTRY_USERNAME;
    this.#basic = user
      ? `Basic ${Buffer.from(`${user}:${env.OSIMG_REGISTRY_PASSWORD ?? ""}`).toString("base64")}`
      : undefined;
    this.#authorization = this.#basic;
  }

  url(path: string): URL {
    return new URL(path.startsWith("http") ? path : `${this.#base}/v2/${this.#repository}${path}`);
  }

  async send(
    method: string,
    url: URL,
    headers: Record<string, string> = {},
    body?: Buffer | { file: string; size: number },
    retried = false,
  ): Promise<Response> {
    const response = await rawRequest(
      method,
      url,
      { ...headers, ...(this.#authorization ? { authorization: this.#authorization } : {}) },
      body,
    );
    if (response.status !== 401) return response;
    const challenge = String(response.headers["www-authenticate"] ?? "");
    if (retried) {
      // Already answered with fresh credentials (or a fresh token): asking again would not change it.
      const reason = /error="([^"]*)"/.exec(challenge)?.[1];
      throw new Error(
        this.#basic
          ? `${url.host} refused the credentials in OSIMG_REGISTRY_USERNAME / OSIMG_REGISTRY_PASSWORD for ${method} ${url.pathname} (HTTP 401${reason ? `, ${reason}` : ""}): check them, and that the account may ${actionsFor(method)} ${this.#repository}`
          : `${url.host} wants credentials for ${method} ${url.pathname} (HTTP 401): set OSIMG_REGISTRY_USERNAME and OSIMG_REGISTRY_PASSWORD`,
      );
    }
    if (challenge.startsWith("Bearer "))
      this.#authorization = `Bearer ${await this.#token(challenge, method)}`;
    else if (this.#basic) this.#authorization = this.#basic;
    else
      throw new Error(
        `${url.host} wants credentials: set OSIMG_REGISTRY_USERNAME and OSIMG_REGISTRY_PASSWORD`,
      );
    return this.send(method, url, headers, body, true);
  }

  async #token(challenge: string, method: string): Promise<string> {
    const params = Object.fromEntries(
      [...challenge.slice(7).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (!params.realm) throw new Error(`registry challenge has no realm: ${challenge}`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    // The challenge names the scope the request needs; without one, ask what docker-registry's token
    // auth wants for the method: pull to read, pull and push to write, delete to delete.
    url.searchParams.set("scope", params.scope ?? `repository:${this.#repository}:${actionsFor(method)}`);
    const response = await rawRequest("GET", url, this.#basic ? { authorization: this.#basic } : {});
    if (response.status !== 200) {
      const answer = `its token service ${url.origin}${url.pathname} answered HTTP ${response.status}${response.body ? `: ${response.body.slice(0, 200)}` : ""}`;
      if (response.status !== 401 && response.status !== 403)
        throw new Error(`no token from ${this.#registry}: ${answer}`);
      throw new Error(
        this.#basic
          ? `${this.#registry} refused the credentials in OSIMG_REGISTRY_USERNAME / OSIMG_REGISTRY_PASSWORD: ${answer}`
          : `${this.#registry} wants credentials: set OSIMG_REGISTRY_USERNAME and OSIMG_REGISTRY_PASSWORD (${answer})`,
      );
    }
    const parsed = JSON.parse(response.body) as { token?: string; access_token?: string };
    const token = parsed.token ?? parsed.access_token;
    if (!token) throw new Error(`token response of ${url.host} has no token`);
    return token;
  }
}

/** The actions of a repository scope a request with this method needs (docker-registry's token auth). */
function actionsFor(method: string): string {
  if (method === "GET" || method === "HEAD") return "pull";
  return method === "DELETE" ? "delete" : "pull,push";
}

function rawRequest(
  method: string,
  url: URL,
  headers: Record<string, string>,
  body?: Buffer | { file: string; size: number },
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const length = body === undefined ? 0 : Buffer.isBuffer(body) ? body.length : body.size;
    const req = send(url, { method, headers: { ...headers, "content-length": String(length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else
      createReadStream(body.file, { highWaterMark: 8 << 20 })
        .on("error", reject)
        .pipe(req);
  });
}

function expect(response: Response, ok: number[], what: string): void {
  if (!ok.includes(response.status))
    throw new Error(
      `${what}: registry answered HTTP ${response.status}${response.body ? `: ${response.body.slice(0, 300)}` : ""}`,
    );
}

async function uploadBlob(client: RegistryClient, layout: string, blob: Descriptor): Promise<boolean> {
  const head = await client.send("HEAD", client.url(`/blobs/${blob.digest}`));
  if (head.status === 200) return false;
  const start = await client.send("POST", client.url("/blobs/uploads/"));
  expect(start, [202], `starting the upload of ${blob.digest}`);
  const location = start.headers.location;
  if (!location) throw new Error("the registry gave no upload location");
  const url = new URL(location, client.url("/").origin);
  url.searchParams.set("digest", blob.digest);
  const put = await client.send(
    "PUT",
    url,
    { "content-type": "application/octet-stream" },
    { file: blobPath(layout, blob.digest), size: blob.size },
  );
  expect(put, [201, 204], `uploading ${blob.digest}`);
  return true;
}

/** Pushes the layout's image to `reference` (blobs first, the manifest last). */
export async function pushLayout(options: PushOptions): Promise<PushResult> {
  const reference = parseReference(options.reference);
  const client = new RegistryClient(reference, options.tlsVerify, options.env ?? process.env);
  const image = await readLayoutImage(options.layout, options.tag);
  let uploaded = 0;
  let skipped = 0;
  for (const blob of image.blobs) {
    if (await uploadBlob(client, options.layout, blob)) uploaded++;
    else skipped++;
    options.log?.(`    blob ${blob.digest} (${blob.size} bytes) ${uploaded + skipped}/${image.blobs.length}`);
  }
  const put = await client.send(
    "PUT",
    client.url(`/manifests/${reference.tag}`),
    { "content-type": image.manifest.mediaType },
    image.manifestBytes,
  );
  expect(put, [201, 204], `putting the manifest ${reference.tag}`);
  return {
    reference: `${reference.registry}/${reference.repository}:${reference.tag}`,
    digest: image.manifest.digest,
    uploaded,
    skipped,
  };
}

/** Deletes the manifest a reference names (the registry must allow deletes). */
export async function deleteImage(options: {
  reference: string;
  tlsVerify: boolean;
  env?: NodeJS.ProcessEnv;
}): Promise<{ digest: string }> {
  const reference = parseReference(options.reference);
  const client = new RegistryClient(reference, options.tlsVerify, options.env ?? process.env);
  const accept = [
    MEDIA_TYPES.manifest,
    MEDIA_TYPES.index,
    "application/vnd.docker.distribution.manifest.v2+json",
  ].join(", ");
  const head = await client.send("HEAD", client.url(`/manifests/${reference.tag}`), { accept });
  if (head.status === 404) throw new Error(`${options.reference} does not exist in the registry`);
  expect(head, [200], `looking up ${options.reference}`);
  const digest = String(head.headers["docker-content-digest"] ?? "");
  if (!digest.startsWith("sha256:"))
    throw new Error(`the registry did not say the digest of ${options.reference}`);
  const deleted = await client.send("DELETE", client.url(`/manifests/${digest}`));
  if (deleted.status === 405)
    throw new Error(
      `the registry of ${options.reference} does not allow deletes (docker-registry: REGISTRY_STORAGE_DELETE_ENABLED=true)`,
    );
  expect(deleted, [202, 200], `deleting ${options.reference}`);
  return { digest };
}
