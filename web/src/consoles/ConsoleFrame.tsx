// A console's frame: a line with the connection's state (connecting, connected, or closed with the
// server's reason) and buttons, above the terminal or display. A console takes every key, Tab included;
// Ctrl+] (as in `osimg vm console`) leaves it, to the line above, from where Tab goes on.
import { Button, Spinner } from "@patternfly/react-core";
import { type ReactNode, type Ref, useRef, useState } from "react";
import { SeverityIcon, ValidIcon } from "../components/icons.tsx";
import { sentence } from "../format.ts";

export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "connected"; detail?: string }
  | { kind: "closed"; reason: string };

function ConsoleStatus({ what, state }: { what: string; state: ConnectionState }) {
  return (
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
  );
}

/** The connection's state, and a way to connect again (a new attempt) once it is closed. */
export function useConnection() {
  const [state, setState] = useState<ConnectionState>({ kind: "connecting" });
  const [attempt, setAttempt] = useState(0);
  return { state, setState, attempt, reconnect: () => setAttempt((n) => n + 1) };
}

export function ConsoleFrame({
  what,
  state,
  onReconnect,
  actions,
  label,
  className,
  host,
}: {
  what: string;
  state: ConnectionState;
  onReconnect: () => void;
  /** Buttons while connecting or connected (once closed, there is Reconnect). */
  actions?: ReactNode;
  /** The accessible name of the terminal or display. */
  label: string;
  className: string;
  host: Ref<HTMLElement>;
}) {
  const bar = useRef<HTMLDivElement>(null);
  return (
    <div className="osimg-console">
      <div ref={bar} className="osimg-console-bar osimg-focus-target" tabIndex={-1}>
        <ConsoleStatus what={what} state={state} />
        <span className="osimg-console-actions">
          <span className="osimg-muted">Ctrl+] leaves the console</span>
          {state.kind === "closed" ? (
            <Button variant="secondary" size="sm" onClick={onReconnect}>
              Reconnect
            </Button>
          ) : (
            actions
          )}
        </span>
      </div>
      <section
        ref={host}
        className={className}
        aria-label={label}
        // Before the terminal or display sees the key (capture), so that they cannot swallow it.
        onKeyDownCapture={(event) => {
          if (event.ctrlKey && event.key === "]") {
            event.preventDefault();
            event.stopPropagation();
            bar.current?.focus();
          }
        }}
      />
    </div>
  );
}
