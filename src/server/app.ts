// The HTTP application: route plugins, the authorization hook in front of every route, one error shape,
// and an OpenAPI description generated from the routes' zod schemas.
import { randomUUID } from "node:crypto";
import swagger from "@fastify/swagger";
import websocket from "@fastify/websocket";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { Logger } from "pino";
import { consoleAudit } from "../audit/hook.ts";
import { selectSubprotocol } from "../auth/credentials.ts";
import { authRoutes } from "../auth/routes.ts";
import { installTenancy, type Tenancy } from "../auth/setup.ts";
import type { BuildService } from "../build/service.ts";
import type { EditableSource } from "../catalog/sources/editable.ts";
import type { CatalogState } from "../catalog/state.ts";
import type { BootTests } from "../images/boot-tests.ts";
import { QuotaGuard } from "../quota/guard.ts";
import { quotaRoutes } from "../quota/routes.ts";
import { installErrorHandler } from "./errors.ts";
import { createMetrics } from "./metrics.ts";
import { type Authorizer, allowAll, installAuthorization } from "./policy.ts";
import { bootTestRoutes } from "./routes/boot-tests.ts";
import { buildRoutes } from "./routes/builds.ts";
import { catalogRoutes } from "./routes/catalog.ts";
import { catalogSourceRoutes } from "./routes/catalog-source.ts";
import { healthRoutes } from "./routes/health.ts";
import { type ImagesService, imageRoutes } from "./routes/images.ts";
import { uiRoutes } from "./routes/ui.ts";
import { type VmRouteOptions, vmRoutes } from "./routes/vms.ts";

export interface AppOptions {
  catalog: CatalogState;
  /** The catalog's source when it can be edited through the API. */
  catalogSource?: EditableSource;
  logger: Logger;
  /** Image intake: the local store, the catalog verifier and pull jobs. */
  images?: ImagesService;
  /** Boot tests of catalog entries: jobs and their results (src/images/boot-tests.ts). */
  bootTests?: BootTests;
  /** Image builds from specs (src/build/service.ts). */
  builds?: BuildService;
  /** VMs: the provider that runs them (local QEMU or KubeVirt). */
  vms?: Omit<VmRouteOptions, "catalog">;
  authorize?: Authorizer;
  /** Authentication, authorization, audit, quotas and hardening (src/auth/setup.ts); wins over authorize. */
  tenancy?: Tenancy;
  version?: string;
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const logger: FastifyBaseLogger = options.logger;
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    genReqId: () => randomUUID(),
    // Behind a reverse proxy: the client's address (rate limits, audit) from X-Forwarded-For of these.
    ...(options.tenancy?.trustProxy?.length ? { trustProxy: [...options.tenancy.trustProxy] } : {}),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "osimg",
        version: options.version ?? "0.1.0",
        description: "OS image catalog, image intake and VMs",
      },
    },
    transform: jsonSchemaTransform,
  });
  installErrorHandler(app);
  const { tenancy } = options;
  if (tenancy) installTenancy(app, tenancy);
  installAuthorization(app, tenancy?.guard.authorize ?? options.authorize ?? allowAll);
  if (tenancy) await app.register(authRoutes(tenancy.guard));
  const metrics = createMetrics(options.catalog);
  await app.register(healthRoutes(options.catalog, metrics));
  const { bootTests } = options;
  await app.register(
    catalogRoutes(
      options.catalog,
      options.images && (() => options.images?.verifier.results() ?? {}),
      bootTests && ((entries) => bootTests.forCatalog(entries)),
    ),
  );
  if (bootTests) await app.register(bootTestRoutes(options.catalog, bootTests));
  if (options.images) await app.register(imageRoutes(options.catalog, options.images));
  if (options.catalogSource) await app.register(catalogSourceRoutes(options.catalogSource));
  if (options.builds)
    await app.register(
      buildRoutes(
        options.builds,
        tenancy ? { may: (request, action) => tenancy.guard.may(request, action, "cluster") } : {},
      ),
    );
  if (options.vms) {
    // Browsers send console credentials as a subprotocol: never select (echo) that one.
    await app.register(websocket, { options: { handleProtocols: selectSubprotocol } });
    const quota = tenancy && new QuotaGuard(tenancy.quota, options.vms.provider);
    await app.register(
      vmRoutes({
        catalog: options.catalog,
        ...options.vms,
        quota,
        consoleAudit: tenancy && consoleAudit(tenancy.audit),
      }),
    );
    if (quota) await app.register(quotaRoutes(quota));
  }
  // Last: the UI answers every GET no other route claims (except /api/*).
  await app.register(uiRoutes());
  return app;
}
