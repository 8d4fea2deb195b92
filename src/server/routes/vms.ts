// VMs in a namespace: create from a catalog entry (checked against its minimums), list, get, lifecycle
// actions, delete, the rendered manifest, what happened to a VM (its events), live change events, and
// consoles over WebSocket.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ConsoleAudit } from "../../audit/hook.ts";
import type { CatalogState } from "../../catalog/state.ts";
import type { QuotaGuard } from "../../quota/guard.ts";
import { allowedActions, VM_ACTIONS, Vm, VmCreateRequest, VmEvent } from "../../vms/model.ts";
import {
  type CallIdentity,
  type ConsoleKind,
  notFound,
  VmError,
  type VmProvider,
} from "../../vms/provider.ts";
import { validateVmRequest } from "../../vms/request.ts";
import { ApiError, ErrorBody } from "../errors.ts";

const Params = z.object({ namespace: z.string() });
const NameParams = Params.extend({ name: z.string() });
const Rendered = z.object({ format: z.enum(["yaml", "argv"]), text: z.string() });
const ValidationError = ErrorBody.extend({
  details: z.array(
    z.object({
      field: z.string(),
      message: z.string(),
      minimum: z.string().optional(),
      hint: z.string().optional(),
      line: z.number().optional().describe("where in the field's text (cloudInit, userData)"),
      column: z.number().optional(),
    }),
  ),
});

const STATUS: Record<VmError["kind"], number> = {
  not_found: 404,
  exists: 409,
  conflict: 409,
  unavailable: 503,
  invalid: 422,
  forbidden: 403,
};

/** The caller's identity for providers that act as the caller (the Kubernetes token, kubernetes auth mode). */
const identityOf = (request: FastifyRequest): CallIdentity => ({
  bearerToken: request.principal?.bearerToken,
});

function toApiError(error: unknown): never {
  if (error instanceof VmError)
    throw new ApiError(STATUS[error.kind], error.kind, error.message, { hint: error.hint });
  throw error;
}

export interface VmRouteOptions {
  catalog: CatalogState;
  provider: VmProvider;
  /** The image's virtual size when the local store or a probe knows it, for the "disk too small" check. */
  imageVirtualSize?: (entryId: string) => number | undefined;
  /** The project's quota, checked atomically with the create. */
  quota?: QuotaGuard;
  /** Console sessions for the audit log. */
  consoleAudit?: ConsoleAudit;
}

export function vmRoutes({
  catalog,
  provider,
  imageVirtualSize,
  quota,
  consoleAudit,
}: VmRouteOptions): FastifyPluginAsyncZod {
  return async (app) => {
    const validate = (namespace: string, body: unknown) => {
      if (!catalog.served)
        throw new ApiError(503, "catalog_unavailable", "no valid catalog has been loaded yet");
      const result = validateVmRequest(body, {
        namespace,
        // The global entries and the namespace's project overlays.
        entries: catalog.entriesFor(namespace),
        imageVirtualSize: (e) => imageVirtualSize?.(e.id),
      });
      if (!result.ok) {
        throw new ApiError(
          422,
          "invalid_vm",
          result.errors.map((e) => `${e.field}: ${e.message}`).join("; "),
          { details: result.errors },
        );
      }
      return result.spec;
    };

    app.get(
      "/api/v1/namespaces/:namespace/vms",
      {
        config: { policy: { action: "vm.read", scope: "namespace" } },
        schema: {
          summary: "VMs of a namespace",
          tags: ["vms"],
          params: Params,
          response: { 200: z.object({ items: z.array(Vm) }) },
        },
      },
      async (request) => ({
        items: await provider.list(request.params.namespace, identityOf(request)).catch(toApiError),
      }),
    );

    app.post(
      "/api/v1/namespaces/:namespace/vms",
      {
        config: { policy: { action: "vm.create", scope: "namespace" } },
        schema: {
          summary: "Create a VM from a catalog entry",
          description:
            "Sizes below the entry's minimums are refused with 422, listing each field with its minimum. With ?dryRun=true nothing is created: the answer is what would be.",
          tags: ["vms"],
          params: Params,
          querystring: z.object({ dryRun: z.enum(["true", "false"]).optional() }),
          body: VmCreateRequest,
          response: {
            200: z.object({ rendered: Rendered }),
            201: Vm,
            409: ErrorBody,
            422: ValidationError,
            503: ErrorBody,
          },
        },
      },
      async (request, reply) => {
        const spec = validate(request.params.namespace, request.body);
        if (request.query.dryRun === "true") return { rendered: await provider.render(spec) };
        const identity = identityOf(request);
        const create = () => provider.create(spec, identity);
        const vm = await (quota
          ? quota.admit(spec.namespace, spec.name, spec, create, identity)
          : create()
        ).catch(toApiError);
        return reply.status(201).send(vm);
      },
    );

    app.get(
      "/api/v1/namespaces/:namespace/vms/:name",
      {
        config: { policy: { action: "vm.read", scope: "namespace" } },
        schema: {
          summary: "A VM with its status",
          tags: ["vms"],
          params: NameParams,
          response: { 200: Vm, 404: ErrorBody },
        },
      },
      async (request) => {
        const { namespace, name } = request.params;
        const vm = await provider.get(namespace, name, identityOf(request)).catch(toApiError);
        if (!vm) toApiError(notFound(namespace, name));
        return vm;
      },
    );

    app.get(
      "/api/v1/namespaces/:namespace/vms/:name/manifest",
      {
        config: { policy: { action: "vm.read", scope: "namespace" } },
        schema: {
          summary: "What the provider runs for this VM (manifests or command line)",
          tags: ["vms"],
          params: NameParams,
          response: { 200: Rendered, 404: ErrorBody },
        },
      },
      async (request) => {
        const { namespace, name } = request.params;
        const vm = await provider.get(namespace, name, identityOf(request)).catch(toApiError);
        if (!vm) toApiError(notFound(namespace, name));
        return provider.render({ ...vm.spec, password: vm.spec.hasPassword ? "(stored secret)" : undefined });
      },
    );

    app.get(
      "/api/v1/namespaces/:namespace/vms/:name/events",
      {
        config: { policy: { action: "vm.read", scope: "namespace" } },
        schema: {
          summary: "What happened to a VM: phase and condition changes, actions, failures",
          description:
            "Oldest first. A repeat of the event right before it is counted (count), not listed again. Local QEMU keeps the last 200 events of each VM (across restarts, deleted with the VM); on KubeVirt these are the Kubernetes Events of the VirtualMachine, its instance and its DataVolumes and PVCs.",
          tags: ["vms"],
          params: NameParams,
          response: { 200: z.object({ items: z.array(VmEvent) }), 403: ErrorBody, 404: ErrorBody },
        },
      },
      async (request) => {
        const { namespace, name } = request.params;
        return { items: await provider.events(namespace, name, identityOf(request)).catch(toApiError) };
      },
    );

    app.post(
      "/api/v1/namespaces/:namespace/vms/:name/:action",
      {
        config: { policy: { action: "vm.operate", scope: "namespace" } },
        schema: {
          summary: "start, stop, restart, pause or unpause a VM",
          tags: ["vms"],
          params: NameParams.extend({ action: z.enum(VM_ACTIONS) }),
          response: { 200: Vm, 404: ErrorBody, 409: ErrorBody },
        },
      },
      async (request) => {
        const { namespace, name, action } = request.params;
        const identity = identityOf(request);
        const vm = await provider.get(namespace, name, identity).catch(toApiError);
        if (!vm) toApiError(notFound(namespace, name));
        if (!allowedActions(vm.status.phase).includes(action)) {
          throw new ApiError(409, "invalid_action", `cannot ${action} a VM that is ${vm.status.phase}`, {
            hint: `possible now: ${allowedActions(vm.status.phase).join(", ") || "nothing, wait"}`,
          });
        }
        return provider.act(namespace, name, action, identity).catch(toApiError);
      },
    );

    app.delete(
      "/api/v1/namespaces/:namespace/vms/:name",
      {
        config: { policy: { action: "vm.delete", scope: "namespace" } },
        schema: {
          summary: "Delete a VM and everything created for it",
          tags: ["vms"],
          params: NameParams,
          response: { 204: z.null(), 404: ErrorBody },
        },
      },
      async (request, reply) => {
        await provider
          .delete(request.params.namespace, request.params.name, identityOf(request))
          .catch(toApiError);
        return reply.status(204).send(null);
      },
    );

    app.get(
      "/api/v1/namespaces/:namespace/vm-events",
      {
        config: { policy: { action: "vm.read", scope: "namespace" } },
        schema: {
          summary: "Server-sent events: the name of each VM that changed",
          tags: ["vms"],
          params: Params,
        },
      },
      async (request, reply) => {
        const { namespace } = request.params;
        const raw = (reply as FastifyReply).raw;
        reply.hijack();
        raw.writeHead(200, {
          "content-type": "text/event-stream",
          "cache-control": "no-cache",
          connection: "keep-alive",
        });
        raw.write(": osimg vm events\n\n");
        const onChange = (change: { namespace: string; name: string; deleted: boolean }) => {
          if (change.namespace === namespace) raw.write(`event: vm\ndata: ${JSON.stringify(change)}\n\n`);
        };
        const keepAlive = setInterval(() => raw.write(": ping\n\n"), 15_000);
        provider.on("changed", onChange);
        const unsubscribe = provider.subscribe?.(namespace, identityOf(request));
        request.raw.on("close", () => {
          clearInterval(keepAlive);
          provider.off("changed", onChange);
          unsubscribe?.();
        });
      },
    );

    for (const kind of ["serial", "vnc"] as ConsoleKind[]) {
      app.get(
        `/api/v1/namespaces/:namespace/vms/:name/${kind === "serial" ? "console" : "vnc"}`,
        {
          websocket: true,
          config: { policy: { action: "vm.console", scope: "namespace" } },
          schema: {
            summary: `The VM's ${kind === "serial" ? "serial console" : "VNC display"} over WebSocket (binary)`,
            tags: ["vms"],
            params: NameParams,
          },
        },
        async (socket, request) => {
          const { namespace, name } = request.params as z.infer<typeof NameParams>;
          // Keystrokes that arrive while the console is being opened are kept, not dropped.
          const early: Buffer[] = [];
          let stream: Awaited<ReturnType<VmProvider["openConsole"]>> | undefined;
          let closed = false;
          const session = { started: Date.now(), bytes: { in: 0, out: 0 } };
          socket.on("message", (data: Buffer) => {
            session.bytes.in += data.length;
            if (stream) stream.write(data);
            else early.push(data);
          });
          socket.on("close", () => {
            closed = true;
            stream?.destroy();
            if (stream)
              consoleAudit?.(request, {
                event: "closed",
                durationMs: Date.now() - session.started,
                bytes: session.bytes,
              });
          });
          try {
            stream = await provider.openConsole(namespace, name, kind, identityOf(request));
          } catch (error) {
            const reason = error instanceof Error ? error.message.slice(0, 120) : "console unavailable";
            consoleAudit?.(request, { event: "failed", reason });
            socket.close(1011, reason);
            return;
          }
          if (closed) {
            stream.destroy();
            return;
          }
          consoleAudit?.(request, { event: "opened" });
          stream.on("data", (chunk: Buffer) => {
            session.bytes.out += chunk.length;
            socket.send(chunk, { binary: true });
          });
          stream.on("close", () => socket.close(1000, "console closed"));
          stream.on("error", () => socket.close(1011, "console failed"));
          for (const data of early) stream.write(data);
        },
      );
    }
  };
}
