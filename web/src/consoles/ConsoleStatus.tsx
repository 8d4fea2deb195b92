// The line above a console: connecting, connected, or closed with the server's reason; and its buttons.
import { Spinner } from "@patternfly/react-core";
import type { ReactNode } from "react";
import { SeverityIcon, ValidIcon } from "../components/icons.tsx";
import { sentence } from "../format.ts";

export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "connected"; detail?: string }
  | { kind: "closed"; reason: string };

export function ConsoleStatus({
  what,
  state,
  actions,
}: {
  what: string;
  state: ConnectionState;
  actions?: ReactNode;
}) {
  return (
    <div className="osimg-console-bar">
      <span role="status" className="osimg-status">
        {state.kind === "connecting" ? (
          <>
            <Spinner size="sm" aria-hidden="true" /> {what}: connecting…
          </>
        ) : state.kind === "connected" ? (
          <>
            <ValidIcon /> {what}: connected{state.detail ? ` (${state.detail})` : ""}
          </>
        ) : (
          <>
            <SeverityIcon severity="warning" /> {what}: closed
            {state.reason ? ` — ${sentence(state.reason)}` : ""}
          </>
        )}
      </span>
      <span className="osimg-console-actions">{actions}</span>
    </div>
  );
}
