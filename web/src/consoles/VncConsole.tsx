// The VNC tab: noVNC's RFB client on the server's VNC WebSocket, which carries raw RFB bytes (noVNC
// takes the WebSocket URL and speaks RFB over binary messages). Scaled to the tab. Loaded only when the
// tab is opened (its own chunk).
import RFB from "@novnc/novnc";
import { Button } from "@patternfly/react-core";
import { useEffect, useRef } from "react";
import type { ConsoleSocket } from "../api/vms.ts";
import { ConsoleFrame, useConnection } from "./ConsoleFrame.tsx";

export default function VncConsole({ socket, name }: { socket: ConsoleSocket; name: string }) {
  const host = useRef<HTMLElement>(null);
  const rfb = useRef<RFB | undefined>(undefined);
  const { state, setState, attempt, reconnect } = useConnection();

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new attempt connects again
  useEffect(() => {
    const element = host.current;
    if (!element) return;
    setState({ kind: "connecting" });
    const client = new RFB(element, socket.url, { wsProtocols: socket.protocols });
    client.scaleViewport = true;
    client.background = "transparent";
    rfb.current = client;
    client.addEventListener("connect", () => setState({ kind: "connected" }));
    client.addEventListener("desktopname", (event) => {
      const desktop = (event as CustomEvent<{ name: string }>).detail.name;
      setState({ kind: "connected", detail: desktop });
    });
    client.addEventListener("disconnect", (event) => {
      const clean = (event as CustomEvent<{ clean: boolean }>).detail.clean;
      setState({ kind: "closed", reason: clean ? "" : "the connection was lost" });
    });
    client.addEventListener("securityfailure", (event) => {
      const reason = (event as CustomEvent<{ reason?: string }>).detail.reason;
      setState({ kind: "closed", reason: `the VNC server refused: ${reason ?? "security failure"}` });
    });
    return () => {
      rfb.current = undefined;
      client.disconnect();
    };
  }, [socket.url, attempt]);

  return (
    <ConsoleFrame
      what="VNC"
      state={state}
      onReconnect={reconnect}
      actions={
        <Button
          variant="secondary"
          size="sm"
          isDisabled={state.kind !== "connected"}
          onClick={() => rfb.current?.sendCtrlAltDel()}
        >
          Send Ctrl+Alt+Del
        </Button>
      }
      label={`Display of ${name}`}
      className="osimg-vnc"
      host={host}
    />
  );
}
