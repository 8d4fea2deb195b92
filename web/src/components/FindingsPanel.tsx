// Errors and warnings of a catalog with where they are (line:column and JSON path), what is wrong and how
// to fix it. In the editor a position is a button that moves the cursor there.
import { Button, Content, EmptyState, Title } from "@patternfly/react-core";
import { Table, Tbody, Td, Th, Thead, Tr } from "@patternfly/react-table";
import type { Finding } from "../../../src/catalog/findings.ts";
import { position } from "../catalog/view.ts";
import { SeverityIcon } from "./icons.tsx";

export interface FindingsPanelProps {
  findings: readonly Finding[];
  /** The table's accessible name. */
  label: string;
  /** Where the positions point, such as the catalog file's path. */
  location?: string;
  onSelect?: (finding: Finding) => void;
  emptyText?: string;
}

export function FindingsPanel({ findings, label, location, onSelect, emptyText }: FindingsPanelProps) {
  if (findings.length === 0)
    return <EmptyState variant="xs" titleText={emptyText ?? "No findings"} headingLevel="h4" />;
  return (
    <Table aria-label={label} variant="compact" gridBreakPoint="grid-md" className="osimg-findings">
      <Thead>
        <Tr>
          <Th width={10}>Severity</Th>
          <Th width={10}>Line:column</Th>
          <Th width={20}>Path</Th>
          <Th>Message</Th>
        </Tr>
      </Thead>
      <Tbody>
        {findings.map((f, i) => (
          // Findings have no identity of their own; their order is stable for a given text.
          // biome-ignore lint/suspicious/noArrayIndexKey: see above
          <Tr key={i}>
            <Td dataLabel="Severity">
              <SeverityIcon severity={f.severity} /> {f.severity}
            </Td>
            <Td dataLabel="Line:column">
              {onSelect ? (
                <Button
                  variant="link"
                  isInline
                  onClick={() => onSelect(f)}
                  aria-label={`go to line ${f.line}, column ${f.column}`}
                >
                  {position(f)}
                </Button>
              ) : (
                <code title={location ? `${location}:${position(f)}` : undefined}>{position(f)}</code>
              )}
            </Td>
            <Td dataLabel="Path">
              <code>{f.path === "" ? "(document)" : f.path}</code>
            </Td>
            <Td dataLabel="Message">
              {f.message}
              {f.hint ? (
                <Content component="small" className="osimg-hint">
                  {f.hint}
                </Content>
              ) : null}
            </Td>
          </Tr>
        ))}
      </Tbody>
    </Table>
  );
}

/** The panel under a "Findings" heading, as a page shows it. */
export function FindingsSection({
  id,
  className,
  ...panel
}: FindingsPanelProps & { id: string; className?: string }) {
  return (
    <section className={className} aria-labelledby={id}>
      <Title headingLevel="h2" id={id}>
        Findings
      </Title>
      <FindingsPanel {...panel} />
    </section>
  );
}
