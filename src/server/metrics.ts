// Prometheus metrics of one server instance (a registry of its own, so that tests can run several).
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { countBySeverity } from "../catalog/findings.ts";
import type { CatalogState } from "../catalog/state.ts";

export interface Metrics {
  registry: Registry;
}

export function createMetrics(state: CatalogState): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "osimg_" });
  const reloadSuccess = new Gauge({
    name: "osimg_catalog_reload_success",
    help: "1 when the last catalog reload was served, 0 when it was rejected (the last good catalog is served)",
    registers: [registry],
  });
  const reloads = new Counter({
    name: "osimg_catalog_reloads_total",
    help: "Catalog reloads by result",
    labelNames: ["result"],
    registers: [registry],
  });
  const lastReload = new Gauge({
    name: "osimg_catalog_last_reload_timestamp_seconds",
    help: "Time of the last catalog reload",
    registers: [registry],
  });
  const entries = new Gauge({
    name: "osimg_catalog_entries",
    help: "Entries of the served catalog",
    registers: [registry],
  });
  const findings = new Gauge({
    name: "osimg_catalog_findings",
    help: "Findings of the last catalog reload by severity",
    labelNames: ["severity"],
    registers: [registry],
  });
  const record = (ok: boolean) => {
    const reload = state.lastReload;
    reloadSuccess.set(ok ? 1 : 0);
    reloads.inc({ result: ok ? "served" : "rejected" });
    lastReload.set((reload?.at.getTime() ?? Date.now()) / 1000);
    for (const [severity, count] of Object.entries(countBySeverity(reload?.findings ?? [])))
      findings.set({ severity }, count);
  };
  state.on("served", (served) => {
    entries.set(served.catalog.entries.length);
    if (state.lastReload?.ok) record(true);
  });
  state.on("rejected", () => record(false));
  if (state.served) entries.set(state.served.catalog.entries.length);
  if (state.lastReload) record(state.lastReload.ok);
  return { registry };
}
