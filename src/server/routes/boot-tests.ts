// Boot tests on the API: start one for a catalog entry (a background job: the image is pulled into the
// store, verified, and booted with a test cloud-init), follow it, read its latest result. Results also
// appear on GET /api/v1/catalog under `bootTest`.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { FIRMWARES } from "../../catalog/fields.ts";
import type { CatalogState } from "../../catalog/state.ts";
import { BootTestBusy, type BootTests, EntryBootTest } from "../../images/boot-tests.ts";
import { ApiError, ErrorBody } from "../errors.ts";
import { catalogEntryOf } from "./images.ts";

const EntryParams = z.object({
  id: z.string().describe("a catalog entry id (GET /api/v1/catalog: entries[].id)"),
});

export const BootTestRequest = z
  .object({
    firmware: z.enum(FIRMWARES).optional().describe("default: the entry's FIRMWARE_TYPE"),
    timeoutSeconds: z
      .number()
      .int()
      .min(10)
      .max(3600)
      .optional()
      .describe("until the test marker must be on the console; default 600"),
  })
  .default({});

export const DEFAULT_BOOT_TEST_TIMEOUT_S = 600;

export function bootTestRoutes(state: CatalogState, bootTests: BootTests): FastifyPluginAsyncZod {
  const entryOf = (id: string) => catalogEntryOf(state, id);

  return async (app) => {
    app.post(
      "/api/v1/images/:id/boot-test",
      {
        config: { policy: { action: "images.test", scope: "cluster" } },
        schema: {
          summary: "Boot-test a catalog entry's image: does it boot and run its cloud-init?",
          description:
            "Starts a background job and answers at once: the image is pulled into the local store (verified), booted on QEMU under the entry's firmware with a test cloud-init whose marker must reach the serial console (the guest agent's answer is recorded too). One test at a time per entry (409 while one is pending or running). Follow it with GET on the same path; the result is kept in the data directory and shown on GET /api/v1/catalog (bootTest).",
          tags: ["images"],
          params: EntryParams,
          body: BootTestRequest,
          response: { 202: EntryBootTest, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody },
        },
      },
      async (request, reply) => {
        const entry = entryOf(request.params.id);
        if (!entry.spec.imageUrl)
          throw new ApiError(409, "no_image_url", `entry "${entry.id}" has no OS_IMAGE_URL`, {
            field: "OS_IMAGE_URL",
          });
        const { firmware, timeoutSeconds } = request.body ?? {};
        try {
          const started = bootTests.start(entry, {
            ...(firmware ? { firmware } : {}),
            timeoutMs: (timeoutSeconds ?? DEFAULT_BOOT_TEST_TIMEOUT_S) * 1000,
          });
          return reply.status(202).send(started);
        } catch (error) {
          if (error instanceof BootTestBusy)
            throw new ApiError(409, "boot_test_running", error.message, {
              hint: `follow it with GET /api/v1/images/${entry.id}/boot-test`,
            });
          throw error;
        }
      },
    );

    app.get(
      "/api/v1/images/:id/boot-test",
      {
        config: { policy: { action: "images.read", scope: "cluster" } },
        schema: {
          summary:
            "A catalog entry's boot test: under way (pending, running: pull or boot), or its latest result",
          tags: ["images"],
          params: EntryParams,
          response: { 200: EntryBootTest, 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => {
        const entry = entryOf(request.params.id);
        const test = await bootTests.get(entry.id);
        if (!test)
          throw new ApiError(404, "not_tested", `entry "${entry.id}" has not been boot-tested`, {
            hint: `start one with POST /api/v1/images/${entry.id}/boot-test`,
          });
        return test;
      },
    );
  };
}
