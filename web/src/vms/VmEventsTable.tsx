// What happened to a VM, newest first: when (an age, the time itself in a tooltip), Normal or Warning,
// the reason, the message, how many times in a row and who reported it. The newest few are shown, the
// rest behind a button. Refetched when the VM changes (see useVmEvents).
import { Alert, AlertActionLink, Button, Skeleton, Tooltip } from "@patternfly/react-core";
import { Table, Tbody, Td, Th, Thead, Tr } from "@patternfly/react-table";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { eventsOfVmQuery, type VmEvent } from "../api/vms.ts";
import { errorText } from "../components/ErrorAlert.tsx";
import { SeverityIcon } from "../components/icons.tsx";
import { useNow } from "../time.ts";
import { age } from "./status.ts";

/** Shown at first; the others on request. */
export const FIRST_EVENTS = 20;

const when = (iso: string) => new Date(iso).toLocaleString();

/**
 * Keys that stay with an event as newer ones come and as its count goes up (events have no id): what it
 * is and when it first happened, numbered when two are alike.
 */
function keysOf(events: readonly VmEvent[]): string[] {
  const seen = new Map<string, number>();
  return events.map((e) => {
    const base = [
      e.firstTime ?? e.time,
      e.type,
      e.reason,
      e.source,
      e.object?.kind,
      e.object?.name,
      e.message,
    ].join("\u0000");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return `${base}\u0000${n}`;
  });
}

/** "5s ago", with the time (and the first time of a repeat) in a tooltip. */
function EventTime({ event, now }: { event: VmEvent; now: number }) {
  const exact =
    event.count > 1 && event.firstTime
      ? `${when(event.time)} (first ${when(event.firstTime)})`
      : when(event.time);
  return (
    <Tooltip content={exact}>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: focusable so that keyboard users get the tooltip */}
      <time dateTime={event.time} tabIndex={0} className="osimg-nowrap">
        {age(event.time, now)} ago
      </time>
    </Tooltip>
  );
}

export function VmEventsTable({ namespace, name, live }: { namespace: string; name: string; live: boolean }) {
  const query = useQuery(eventsOfVmQuery(namespace, name, live));
  const now = useNow(5000);
  const [all, setAll] = useState(false);
  if (query.isError && !query.data)
    return (
      <Alert
        variant="warning"
        isInline
        title="Cannot load the events"
        actionLinks={<AlertActionLink onClick={() => query.refetch()}>Try again</AlertActionLink>}
      >
        {errorText(query.error)}
      </Alert>
    );
  if (!query.data) return <Skeleton height="5rem" screenreaderText="Loading the events" />;
  if (query.data.length === 0) return <p className="osimg-muted">No events recorded yet.</p>;
  // Keys are counted from the oldest, so that they stay the same as newer events come.
  const keys = keysOf(query.data).reverse();
  const newest = [...query.data].reverse();
  const shown = all ? newest : newest.slice(0, FIRST_EVENTS);
  return (
    <>
      <Table aria-label="Events" variant="compact" gridBreakPoint="grid-md">
        <Thead>
          <Tr>
            <Th>Time</Th>
            <Th>Type</Th>
            <Th>Reason</Th>
            <Th modifier="wrap">Message</Th>
            <Th>Count</Th>
            <Th>Source</Th>
          </Tr>
        </Thead>
        <Tbody>
          {shown.map((event, index) => (
            <Tr key={keys[index]} data-type={event.type}>
              <Td dataLabel="Time">
                <EventTime event={event} now={now} />
              </Td>
              <Td dataLabel="Type">
                {event.type === "Warning" ? (
                  <span className="osimg-status">
                    <SeverityIcon severity="warning" /> Warning
                  </span>
                ) : (
                  "Normal"
                )}
              </Td>
              <Td dataLabel="Reason">{event.reason}</Td>
              <Td dataLabel="Message" className="osimg-value">
                {event.object ? (
                  <span className="osimg-hint">
                    {event.object.kind} {event.object.name}
                  </span>
                ) : null}
                {event.message}
              </Td>
              <Td dataLabel="Count">{event.count > 1 ? `×${event.count}` : ""}</Td>
              <Td dataLabel="Source">{event.source}</Td>
            </Tr>
          ))}
        </Tbody>
      </Table>
      {newest.length > FIRST_EVENTS ? (
        <Button variant="link" isInline onClick={() => setAll(!all)} aria-expanded={all}>
          {all ? `Show the newest ${FIRST_EVENTS} only` : `Show all ${newest.length} events`}
        </Button>
      ) : null}
    </>
  );
}
