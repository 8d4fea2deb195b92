// An entry's validity: valid, warnings or errors, with the findings in a tooltip.
import { Tooltip } from "@patternfly/react-core";
import type { CatalogEntry } from "../../../src/catalog/model.ts";
import { entryStatus, position } from "../catalog/view.ts";
import { plural } from "../format.ts";
import { SeverityIcon, ValidIcon } from "./icons.tsx";

export function EntryStatus({ entry }: { entry: CatalogEntry }) {
  const status = entryStatus(entry);
  if (status.level === "valid")
    return (
      <span className="osimg-status">
        <ValidIcon /> valid
      </span>
    );
  const findings = [...status.errors, ...status.warnings];
  const summary = [
    status.errors.length > 0 ? plural(status.errors.length, "error") : "",
    status.warnings.length > 0 ? plural(status.warnings.length, "warning") : "",
  ]
    .filter(Boolean)
    .join(", ");
  return (
    <Tooltip
      content={
        <ul className="osimg-tooltip-list">
          {findings.map((f) => (
            <li key={`${f.line}:${f.column}:${f.code}`}>
              {position(f)} {f.message}
            </li>
          ))}
        </ul>
      }
    >
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: focusable so that keyboard users get the tooltip */}
      <span className="osimg-status" tabIndex={0}>
        <SeverityIcon severity={status.level === "error" ? "error" : "warning"} /> {summary}
      </span>
    </Tooltip>
  );
}
