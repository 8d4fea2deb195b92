// The fake Kubernetes API server for tests (never imported by src/). See server.ts.
export { CLOUD_INIT_INLINE_LIMIT, RUN_STRATEGIES } from "./admission.ts";
export { Cluster, type ClusterOptions } from "./cluster.ts";
export { KubeVirtControllers, NODE_NAME } from "./controllers.ts";
export { JobController, type PodRun, type PodRunner } from "./jobs.ts";
export type { AccessCheck, Authorize, FakeUser } from "./rbac.ts";
export { BUILTIN_TYPES, type KubeObject, type ResourceType } from "./resources.ts";
export { validateAgainst } from "./schema.ts";
export { type FailureRule, FakeKube, type FakeKubeOptions, type RecordedRequest } from "./server.ts";
export type { Status } from "./status.ts";
