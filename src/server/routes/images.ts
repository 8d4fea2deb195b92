// Image intake on the API: verify a catalog entry's image now, pull it into the local store (a job whose
// progress is polled or streamed as server-sent events), list and remove stored images.
import type { FastifyReply } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { CatalogEntry } from "../../catalog/model.ts";
import type { CatalogState } from "../../catalog/state.ts";
import type { PullJobs } from "../../images/pull-jobs.ts";
import { EntryCheck, PullJob, StoredImage } from "../../images/schemas.ts";
import { ImageInUse, type ImageStore } from "../../images/store.ts";
import type { CatalogVerifier } from "../../images/verifier.ts";
import { ApiError, ErrorBody } from "../errors.ts";

export interface ImagesService {
  store: ImageStore;
  verifier: CatalogVerifier;
  pulls: PullJobs;
}

const EntryParams = z.object({
  id: z.string().describe("a catalog entry id (GET /api/v1/catalog: entries[].id)"),
});
const JobParams = z.object({ job: z.string() });
const DigestParams = z.object({
  sha256: z.string().describe("the stored image's sha256, or a unique prefix of 6+ digits"),
});

/** The served catalog's entry `id`; 503 without a catalog, 404 (listing the ids) without that entry. */
export function catalogEntryOf(state: CatalogState, id: string): CatalogEntry {
  const served = state.served;
  if (!served) throw new ApiError(503, "catalog_unavailable", "no valid catalog has been loaded yet");
  const entry = served.catalog.entries.find((e) => e.id === id);
  if (!entry)
    throw new ApiError(404, "unknown_entry", `the catalog has no entry "${id}"`, {
      field: "id",
      hint: `entries: ${served.catalog.entries.map((e) => e.id).join(", ")}`,
    });
  return entry;
}

export function imageRoutes(state: CatalogState, images: ImagesService): FastifyPluginAsyncZod {
  const entryOf = (id: string) => catalogEntryOf(state, id);

  return async (app) => {
    app.post(
      "/api/v1/images/:id/verify",
      {
        config: { policy: { action: "images.verify", scope: "cluster" } },
        schema: {
          summary:
            "Check a catalog entry's image now: reachable, format, size vs MIN_STORAGE, checksum, safety",
          description:
            "Reads only the image's headers (HTTP Range). The result also appears on GET /api/v1/catalog.",
          tags: ["images"],
          params: EntryParams,
          response: { 200: EntryCheck, 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => {
        const entry = entryOf(request.params.id);
        const check = await images.verifier.verifyNow(entry.id);
        if (!check) throw new ApiError(404, "unknown_entry", `the catalog has no entry "${entry.id}"`);
        return check;
      },
    );

    app.post(
      "/api/v1/images/:id/pull",
      {
        config: { policy: { action: "images.pull", scope: "cluster" } },
        schema: {
          summary: "Pull a catalog entry's image into the local store (verified, resumable, atomic)",
          description:
            "Starts a pull job and answers at once; follow it with GET /api/v1/pulls/{job} or its /events stream.",
          tags: ["images"],
          params: EntryParams,
          response: { 202: PullJob, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody },
        },
      },
      async (request, reply) => {
        const entry = entryOf(request.params.id);
        if (!entry.spec.imageUrl)
          throw new ApiError(409, "no_image_url", `entry "${entry.id}" has no OS_IMAGE_URL`, {
            field: "OS_IMAGE_URL",
          });
        const job = images.pulls.start(entry.spec.imageUrl, {
          entry: entry.id,
          ...(entry.spec.sha256 ? { pinnedSha256: entry.spec.sha256 } : {}),
        });
        return reply.status(202).send(job);
      },
    );

    app.get(
      "/api/v1/pulls/:job",
      {
        config: { policy: { action: "images.read", scope: "cluster" } },
        schema: {
          summary: "A pull job: phase, bytes received, and the stored image or the error",
          tags: ["images"],
          params: JobParams,
          response: { 200: PullJob, 404: ErrorBody },
        },
      },
      async (request) => {
        const job = images.pulls.get(request.params.job);
        if (!job) throw new ApiError(404, "unknown_job", `no pull job "${request.params.job}"`);
        return job;
      },
    );

    app.get(
      "/api/v1/pulls/:job/events",
      {
        config: { policy: { action: "images.read", scope: "cluster" } },
        schema: {
          summary: "A pull job's progress as server-sent events (event: progress | done | failed)",
          tags: ["images"],
          params: JobParams,
          produces: ["text/event-stream"],
          response: { 404: ErrorBody },
        },
      },
      async (request, reply) => {
        const job = images.pulls.get(request.params.job);
        if (!job) throw new ApiError(404, "unknown_job", `no pull job "${request.params.job}"`);
        const raw = (reply as FastifyReply).hijack().raw;
        raw.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
          connection: "keep-alive",
        });
        const send = (j: PullJob) => {
          const event = j.state === "running" ? "progress" : j.state;
          raw.write(`event: ${event}\ndata: ${JSON.stringify(j)}\n\n`);
          if (j.state !== "running") {
            images.pulls.off("update", onUpdate);
            raw.end();
          }
        };
        let last = 0;
        const onUpdate = (j: PullJob) => {
          if (j.id !== job.id) return;
          const now = Date.now();
          if (j.state === "running" && now - last < 250) return;
          last = now;
          send(j);
        };
        images.pulls.on("update", onUpdate);
        request.raw.on("close", () => images.pulls.off("update", onUpdate));
        send(job);
      },
    );

    app.get(
      "/api/v1/store",
      {
        config: { policy: { action: "images.read", scope: "cluster" } },
        schema: {
          summary: "The images in the local store",
          tags: ["images"],
          response: { 200: z.array(StoredImage) },
        },
      },
      async () => images.store.list(),
    );

    app.delete(
      "/api/v1/store/:sha256",
      {
        config: { policy: { action: "images.delete", scope: "cluster" } },
        schema: {
          summary: "Remove an image from the local store",
          tags: ["images"],
          params: DigestParams,
          response: { 200: StoredImage, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody },
        },
      },
      async (request) => {
        let removed: Awaited<ReturnType<ImageStore["remove"]>>;
        try {
          removed = await images.store.remove(request.params.sha256);
        } catch (error) {
          if (error instanceof ImageInUse)
            throw new ApiError(409, "image_in_use", error.message, {
              hint: "delete those VMs first: their disks are overlays that read this image",
            });
          throw new ApiError(400, "ambiguous_id", (error as Error).message, { field: "sha256" });
        }
        if (!removed) throw new ApiError(404, "not_stored", `no stored image "${request.params.sha256}"`);
        return removed;
      },
    );
  };
}
