// Image builds on the API: submit a spec (with the files it names) to be built in the background, list
// builds, read one (state, findings, the build record), and follow its log as server-sent events.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { BuildRequestError, type BuildService, type BuildView } from "../../build/service.ts";
import { BUILD_KINDS } from "../../build/spec.ts";
import { Finding } from "../../catalog/findings.ts";
import { ApiError, ErrorBody } from "../errors.ts";
import type { Action } from "../policy.ts";

export interface BuildRouteOptions {
  /** Whether the caller may do more than the route's own policy (writing into a catalog: catalog.write). */
  may?: (request: FastifyRequest, action: Action) => Promise<boolean>;
}

const BuildViewSchema = z.object({
  id: z.string(),
  kind: z.enum(BUILD_KINDS),
  state: z.enum(["queued", "running", "succeeded", "failed"]),
  runner: z.enum(["local", "cluster"]),
  createdAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  error: z.string().optional(),
  findings: z.array(Finding).optional(),
  record: z.record(z.string(), z.unknown()).optional().describe("the build record (build.json)"),
  logLines: z.number().int(),
});

const BuildBody = z.object({
  spec: z.string().min(1).describe("the build spec (TOML)"),
  kind: z.enum(BUILD_KINDS),
  files: z
    .record(z.string(), z.string())
    .optional()
    .describe("files the spec names, by relative path, base64"),
  push: z.object({ reference: z.string(), tlsVerify: z.boolean().default(true) }).optional(),
  catalogConfigMap: z
    .string()
    .optional()
    .describe(
      'builds as Kubernetes Jobs: on success, write the pushed image into this catalog ConfigMap ("namespace/name"); needs catalog.write too',
    ),
});

const IdParams = z.object({ id: z.string().regex(/^[a-z0-9]{1,40}$/) });

/** Findings of a spec as the API's error details: each at spec:line:column, the fix in the message. */
function findingDetails(findings: readonly Finding[]) {
  return findings
    .filter((f) => f.severity === "error")
    .map((f) => ({
      field: `spec:${f.line}:${f.column}${f.path ? ` ${f.path}` : ""}`,
      message: f.hint ? `${f.message} (fix: ${f.hint})` : f.message,
    }));
}

/** A build as the API shows it (the record as a plain object). */
const apiView = ({ record, ...rest }: BuildView) => (record ? { ...rest, record: { ...record } } : rest);

export function buildRoutes(builds: BuildService, options: BuildRouteOptions = {}): FastifyPluginAsyncZod {
  const find = (id: string): BuildView => {
    const view = builds.get(id);
    if (!view) throw new ApiError(404, "unknown_build", `no build "${id}"`);
    return view;
  };
  return async (app) => {
    app.post(
      "/api/v1/builds",
      {
        config: { policy: { action: "build.create", scope: "cluster" } },
        bodyLimit: 1536 * 1024,
        schema: {
          summary: "Build an image from a spec (validated now, built in the background)",
          description:
            "Answers 400 with the spec's findings (line:column) when it is not valid; follow the build with GET /api/v1/builds/{id}/logs.",
          tags: ["builds"],
          body: BuildBody,
          response: { 202: BuildViewSchema, 400: ErrorBody, 403: ErrorBody },
        },
      },
      async (request, reply) => {
        // Writing into a catalog edits it: the caller must be allowed to edit the catalog too.
        if (
          request.body.catalogConfigMap !== undefined &&
          options.may &&
          !(await options.may(request, "catalog.write"))
        )
          throw new ApiError(
            403,
            "forbidden",
            "catalogConfigMap writes into a catalog: that needs catalog.write as well as build.create",
            { field: "catalogConfigMap" },
          );
        try {
          const view = builds.submit(request.body);
          return reply.status(202).send(apiView(view));
        } catch (error) {
          if (!(error instanceof BuildRequestError)) throw error;
          throw new ApiError(400, "invalid_spec", error.message, {
            ...(error.field ? { field: error.field } : {}),
            details:
              error.findings.length > 0
                ? findingDetails(error.findings)
                : [{ field: error.field ?? "spec", message: error.message }],
          });
        }
      },
    );

    app.get(
      "/api/v1/builds",
      {
        config: { policy: { action: "build.read", scope: "cluster" } },
        schema: {
          summary: "Builds, newest first",
          tags: ["builds"],
          response: { 200: z.array(BuildViewSchema) },
        },
      },
      async () => builds.list().map(apiView),
    );

    app.get(
      "/api/v1/builds/:id",
      {
        config: { policy: { action: "build.read", scope: "cluster" } },
        schema: {
          summary: "A build: state, findings, its record when it succeeded",
          tags: ["builds"],
          params: IdParams,
          response: { 200: BuildViewSchema, 404: ErrorBody },
        },
      },
      async (request) => apiView(find(request.params.id)),
    );

    app.get(
      "/api/v1/builds/:id/logs",
      {
        config: { policy: { action: "build.read", scope: "cluster" } },
        schema: {
          summary: "A build's log as server-sent events (event: log, then done or failed with the build)",
          tags: ["builds"],
          params: IdParams,
          produces: ["text/event-stream"],
          response: { 404: ErrorBody },
        },
      },
      async (request, reply) => {
        const view = find(request.params.id);
        const id = view.id;
        const raw = (reply as FastifyReply).hijack().raw;
        raw.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
          connection: "keep-alive",
        });
        const sendLine = (line: string) => raw.write(`event: log\ndata: ${JSON.stringify(line)}\n\n`);
        const finish = (v: BuildView) => {
          raw.write(`event: ${v.state === "succeeded" ? "done" : "failed"}\ndata: ${JSON.stringify(v)}\n\n`);
          cleanup();
          raw.end();
        };
        const onLog = (buildId: string, line: string) => {
          if (buildId === id) sendLine(line);
        };
        const onUpdate = (v: BuildView) => {
          if (v.id === id && (v.state === "succeeded" || v.state === "failed")) finish(v);
        };
        const cleanup = () => {
          builds.off("log", onLog);
          builds.off("update", onUpdate);
        };
        // The backlog first, then live lines; a finished build ends the stream at once.
        for (const line of builds.logs(id) ?? []) sendLine(line);
        const current = builds.get(id) as BuildView;
        if (current.state === "succeeded" || current.state === "failed") {
          finish(current);
          return;
        }
        builds.on("log", onLog);
        builds.on("update", onUpdate);
        request.raw.on("close", cleanup);
      },
    );
  };
}
