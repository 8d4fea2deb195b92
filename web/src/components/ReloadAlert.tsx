// Says plainly when the latest catalog edit was rejected: the catalog being served is then the last good
// one (or none), and the rejected edit's findings say what to fix.
import { Alert } from "@patternfly/react-core";
import type { CatalogResponse } from "../api/catalog.ts";
import { FindingsPanel } from "./FindingsPanel.tsx";

function when(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function ReloadAlert({ catalog }: { catalog: CatalogResponse }) {
  const reload = catalog.lastReload;
  if (!reload || reload.ok) return null;
  const errors = reload.counts.error;
  const title = catalog.servingLastGood
    ? "Serving the last good catalog: the latest edit was rejected"
    : "No catalog is served: the catalog has errors";
  return (
    <Alert variant="danger" isInline title={title} className="osimg-reload-alert" component="h2">
      <p>
        {reload.source.location} was read at {when(reload.at)} and has {errors} error{errors === 1 ? "" : "s"}
        .{" "}
        {catalog.servingLastGood
          ? `Until they are fixed, osimg keeps serving the previous valid catalog (version ${catalog.version.slice(0, 12)}, ${catalog.counts.entries} entries).`
          : "Until they are fixed, no OS images are offered."}{" "}
        Fix the file and the change is served at once.
      </p>
      <FindingsPanel
        findings={reload.findings}
        label="Findings of the rejected edit"
        location={reload.source.location}
      />
    </Alert>
  );
}
