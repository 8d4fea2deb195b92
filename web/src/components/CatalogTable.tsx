// The OS images of the catalog, values as written, with their validity and image checks. Sorting is by
// parsed value (sizes in bytes); choosing a row opens its details.
import { Button, Label, LabelGroup } from "@patternfly/react-core";
import { Table, Tbody, Td, Th, Thead, type ThProps, Tr } from "@patternfly/react-table";
import type { ReactNode } from "react";
import type { CatalogEntry } from "../../../src/catalog/model.ts";
import { type EntryVerification, entryChecks } from "../catalog/verification.ts";
import { type SortDirection, type SortKey, written } from "../catalog/view.ts";
import { EntryStatus } from "./EntryStatus.tsx";
import { VerificationChecks } from "./VerificationChecks.tsx";

export interface CatalogSort {
  key: SortKey;
  direction: SortDirection;
}

export interface CatalogTableProps {
  /** Already filtered and sorted. */
  entries: readonly CatalogEntry[];
  verification?: Record<string, EntryVerification>;
  sort: CatalogSort;
  onSort: (sort: CatalogSort) => void;
  selectedId?: string;
  onSelect: (entryId: string) => void;
}

function Written({ entry, field }: { entry: CatalogEntry; field: string }) {
  const value = written(entry, field);
  return value === "" ? <span className="osimg-muted">—</span> : value;
}

function Features({ entry }: { entry: CatalogEntry }) {
  const items = written(entry, "FEATURES")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) return <span className="osimg-muted">—</span>;
  return (
    <LabelGroup numLabels={5}>
      {items.map((item) => (
        <Label key={item} isCompact>
          {item}
        </Label>
      ))}
    </LabelGroup>
  );
}

interface Column {
  title: string;
  sort?: SortKey;
  /** What the column shows, in a tooltip of its header. */
  info?: string;
  cell: (entry: CatalogEntry, verification: Record<string, EntryVerification> | undefined) => ReactNode;
}

const asWritten = (field: string) => (entry: CatalogEntry) => <Written entry={entry} field={field} />;

/** Every column but the name, which opens the details. */
const COLUMNS: Column[] = [
  { title: "Cloud user", sort: "cloudUser", cell: asWritten("CLOUD_USER") },
  { title: "Min vCPU", sort: "vcpu", cell: asWritten("MIN_VCPU") },
  { title: "Min memory", sort: "memory", cell: asWritten("MIN_MEMORY") },
  { title: "Min storage", sort: "storage", cell: asWritten("MIN_STORAGE") },
  { title: "Firmware", sort: "firmware", cell: asWritten("FIRMWARE_TYPE") },
  { title: "Machine", sort: "machine", cell: asWritten("MACHINE_TYPE") },
  { title: "Features", cell: (entry) => <Features entry={entry} /> },
  { title: "Status", sort: "status", cell: (entry) => <EntryStatus entry={entry} /> },
  {
    title: "Verification",
    info: "The server's checks of the image, in this order: reachable, checksum verified, safe format, boot test passed",
    cell: (entry, verification) => <VerificationChecks result={entryChecks(verification, entry.id)} />,
  },
];

const NAME = "Name";
const SORT_COLUMNS: (SortKey | undefined)[] = ["name", ...COLUMNS.map((c) => c.sort)];

export function CatalogTable({
  entries,
  verification,
  sort,
  onSort,
  selectedId,
  onSelect,
}: CatalogTableProps) {
  const sortParams = (key: SortKey | undefined): ThProps["sort"] =>
    key === undefined
      ? undefined
      : {
          sortBy: {
            index: SORT_COLUMNS.indexOf(sort.key),
            direction: sort.direction,
            defaultDirection: "asc",
          },
          onSort: (_event, _index, direction) => onSort({ key, direction }),
          columnIndex: SORT_COLUMNS.indexOf(key),
        };
  return (
    <Table aria-label="OS images" variant="compact" gridBreakPoint="grid-lg" isStriped>
      <Thead>
        <Tr>
          <Th sort={sortParams("name")} modifier="wrap" width={15}>
            {NAME}
          </Th>
          {COLUMNS.map((c) => (
            <Th
              key={c.title}
              sort={sortParams(c.sort)}
              modifier="wrap"
              info={c.info ? { tooltip: c.info, ariaLabel: `About ${c.title}` } : undefined}
            >
              {c.title}
            </Th>
          ))}
        </Tr>
      </Thead>
      <Tbody>
        {entries.map((entry) => (
          <Tr
            key={entry.id}
            isClickable
            isRowSelected={entry.id === selectedId}
            // A click anywhere on the row opens the details. Keyboard users have the name's button: the
            // row is no tab stop of its own (onRowClick would make it one, and swallow the button's Enter).
            tabIndex={-1}
            onClick={(event) => {
              if ((event.target as HTMLElement).closest("button, a")) return;
              onSelect(entry.id);
            }}
          >
            <Td dataLabel={NAME}>
              <Button variant="link" isInline onClick={() => onSelect(entry.id)}>
                {written(entry, "OS_NAME") || entry.id}
              </Button>
            </Td>
            {COLUMNS.map((c) => (
              <Td key={c.title} dataLabel={c.title}>
                {c.cell(entry, verification)}
              </Td>
            ))}
          </Tr>
        ))}
      </Tbody>
    </Table>
  );
}
