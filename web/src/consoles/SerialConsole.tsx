// The serial console tab: xterm.js over the server's console WebSocket (raw bytes both ways). Loaded
// only when the tab is opened (its own chunk). Keystrokes typed while it connects are sent once it is open.
import "@xterm/xterm/css/xterm.css";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { useEffect, useRef } from "react";
import type { ConsoleSocket } from "../api/vms.ts";
import { ConsoleFrame, useConnection } from "./ConsoleFrame.tsx";

export default function SerialConsole({ socket: endpoint, name }: { socket: ConsoleSocket; name: string }) {
  const host = useRef<HTMLElement>(null);
  const { state, setState, attempt, reconnect } = useConnection();

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new attempt connects again
  useEffect(() => {
    const element = host.current;
    if (!element) return;
    setState({ kind: "connecting" });
    const style = getComputedStyle(element);
    const terminal = new Terminal({
      cursorBlink: true,
      scrollback: 5000,
      fontFamily: style.getPropertyValue("--pf-t--global--font--family--mono") || "monospace",
      fontSize: 14,
      screenReaderMode: false,
    });
    const fit = new FitAddon();
    terminal.loadAddon(fit);
    terminal.open(element);
    terminal.textarea?.setAttribute("aria-label", `Serial console of ${name}`);
    fit.fit();

    const socket = new WebSocket(endpoint.url, endpoint.protocols);
    socket.binaryType = "arraybuffer";
    const early: Uint8Array<ArrayBuffer>[] = [];
    const encoder = new TextEncoder();
    const sendBytes = (bytes: Uint8Array<ArrayBuffer>) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(bytes);
      else if (socket.readyState === WebSocket.CONNECTING) early.push(bytes);
    };
    socket.onopen = () => {
      setState({ kind: "connected" });
      for (const bytes of early.splice(0)) socket.send(bytes);
      terminal.focus();
    };
    socket.onmessage = (event) => terminal.write(new Uint8Array(event.data as ArrayBuffer));
    socket.onclose = (event) =>
      setState({ kind: "closed", reason: event.reason || (event.wasClean ? "" : "the connection was lost") });
    const onData = terminal.onData((data) => sendBytes(encoder.encode(data)));
    // Bytes that are not text (some mouse reports): one byte per character.
    const onBinary = terminal.onBinary((data) => sendBytes(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    const resize = new ResizeObserver(() => fit.fit());
    resize.observe(element);
    return () => {
      resize.disconnect();
      onData.dispose();
      onBinary.dispose();
      socket.close();
      terminal.dispose();
    };
  }, [endpoint.url, attempt]);

  return (
    <ConsoleFrame
      what="Serial console"
      state={state}
      onReconnect={reconnect}
      label={`Serial console of ${name}`}
      className="osimg-terminal"
      host={host}
    />
  );
}
