// The web UI at /: the built files of web/dist, and index.html for every other path so that the UI's
// own routes (/catalog, /catalog/edit, …) load on a reload or a shared link. Never for /api/*: an unknown
// API path answers the usual JSON 404. Hashed assets are cached for a year; index.html is revalidated on
// every load so that a new build is picked up. Precompressed twins (.br, .gz) written by the build are
// sent to clients that accept them.
import { stat } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { PROJECT_ROOT } from "../../config/paths.ts";
import { ApiError } from "../errors.ts";

export const WEB_DIST = join(PROJECT_ROOT, "web", "dist");

export interface UiOptions {
  /** The built UI; web/dist by default. */
  root?: string;
}

const YEAR_MS = 365 * 24 * 3600 * 1000;

/** Files a page loads; a missing one is a 404, never the page (the browser would run HTML as a script). */
const ASSET = /\.(m?js|css|map|json|svg|png|jpe?g|gif|ico|webp|woff2?|ttf|txt|wasm|webmanifest)$/i;

/** Paths that belong to the server, never to the UI: an unknown one is a 404, not the UI. */
const SERVER_PREFIXES = ["api"];

// The UI loads only its own files and talks only to this server (including its WebSockets).
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");

async function isFile(path: string): Promise<boolean> {
  const s = await stat(path).catch(() => undefined);
  return s?.isFile() ?? false;
}

function notFound(request: FastifyRequest): ApiError {
  return new ApiError(404, "not_found", `no route ${request.method} ${request.url.split("?")[0]}`);
}

export function uiRoutes(options: UiOptions = {}): FastifyPluginAsyncZod {
  const root = resolve(options.root ?? WEB_DIST);
  return async (app) => {
    // Only reply.sendFile (path checks, ranges, ETags, precompressed files); the route is below.
    await app.register(fastifyStatic, {
      root,
      serve: false,
      preCompressed: true,
      dotfiles: "ignore",
      index: false,
      suppressWarning: true,
    });

    const sendIndex = async (reply: FastifyReply) => {
      if (!(await isFile(join(root, "index.html"))))
        throw new ApiError(503, "ui_not_built", `the web UI has not been built (${root} is missing)`, {
          hint: "run `npm run build:web`; `npm start` builds it when needed",
        });
      reply
        .header("cache-control", "no-cache")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "same-origin");
      return reply.sendFile("index.html", root, { cacheControl: false });
    };

    app.get(
      "/*",
      {
        config: { policy: { action: "ui.read", scope: "public" } },
        schema: { hide: true },
      },
      async (request, reply) => {
        const path = (request.params as { "*": string })["*"];
        const first = path.split("/", 1)[0] ?? "";
        if (SERVER_PREFIXES.includes(first)) throw notFound(request);
        const file = resolve(root, path);
        const inside = file.startsWith(root + sep);
        if (inside && !path.split("/").some((s) => s.startsWith(".")) && (await isFile(file))) {
          const hashed = path.startsWith("assets/");
          reply.header("x-content-type-options", "nosniff");
          if (!hashed) reply.header("cache-control", "no-cache");
          return reply.sendFile(path, root, {
            cacheControl: hashed,
            maxAge: hashed ? YEAR_MS : 0,
            immutable: hashed,
          });
        }
        // A missing file (an old build's chunk, a typo) is a 404; any other path is a page of the UI.
        if (ASSET.test(path) || path.startsWith("assets/")) throw notFound(request);
        return sendIndex(reply);
      },
    );
  };
}
