// One catalog entry in full: every value as written, the cloud-init in a read-only code view, the image
// checks, and the entry's findings. Shown in the catalog page's drawer.
import {
  CodeBlock,
  CodeBlockCode,
  Content,
  DescriptionList,
  DescriptionListDescription,
  DescriptionListGroup,
  DescriptionListTerm,
  DrawerActions,
  DrawerCloseButton,
  DrawerHead,
  DrawerPanelBody,
  DrawerPanelContent,
  Title,
} from "@patternfly/react-core";
import { type ReactNode, useEffect, useRef } from "react";
import type { CatalogEntry } from "../../../src/catalog/model.ts";
import { type EntryVerification, entryChecks } from "../catalog/verification.ts";
import { written } from "../catalog/view.ts";
import { EntryStatus } from "./EntryStatus.tsx";
import { FindingsPanel } from "./FindingsPanel.tsx";
import { CheckIcon, checkWord, SeverityIcon } from "./icons.tsx";

export interface EntryDetailsProps {
  entry: CatalogEntry;
  verification?: Record<string, EntryVerification>;
  /** Where the entry's line numbers point. */
  location?: string;
  onClose: () => void;
  /** Actions on the entry (Create VM), shown under its title. */
  actions?: ReactNode;
}

const SHOWN_APART = new Set(["CLOUD_INIT"]);

export function EntryDetails({ entry, verification, location, onClose, actions }: EntryDetailsProps) {
  const cloudInit = written(entry, "CLOUD_INIT");
  const checks = entryChecks(verification, entry.id);
  const titleId = `entry-${entry.id}-title`;
  const title = useRef<HTMLHeadingElement>(null);
  // Opening (or switching) the details moves the focus into them; Escape closes them.
  // biome-ignore lint/correctness/useExhaustiveDependencies: focus again when another entry is shown
  useEffect(() => title.current?.focus(), [entry.id]);
  return (
    <DrawerPanelContent
      widths={{ default: "width_100", lg: "width_50", "2xl": "width_33" }}
      isResizable
      onKeyDown={(event) => {
        if (event.key === "Escape") onClose();
      }}
    >
      <DrawerHead>
        <Title headingLevel="h2" id={titleId} tabIndex={-1} ref={title} className="osimg-focus-target">
          {written(entry, "OS_NAME") || entry.id}
        </Title>
        <DrawerActions>
          <DrawerCloseButton onClick={onClose} aria-label="Close details" />
        </DrawerActions>
      </DrawerHead>
      <DrawerPanelBody>
        <section aria-labelledby={titleId} className="osimg-details">
          <div>
            <EntryStatus entry={entry} /> · entry {entry.index + 1}, line {entry.line}
            {location ? ` of ${location}` : ""}
          </div>
          {actions ? <div>{actions}</div> : null}
          <DescriptionList isCompact isHorizontal aria-label="Values as written">
            {Object.keys(entry.values)
              .filter((key) => !SHOWN_APART.has(key))
              .map((key) => {
                const value = entry.values[key];
                return (
                  <DescriptionListGroup key={key}>
                    <DescriptionListTerm>
                      <code>{key}</code>
                    </DescriptionListTerm>
                    <DescriptionListDescription>
                      {typeof value === "string" ? (
                        <span className="osimg-value">{value}</span>
                      ) : (
                        <code className="osimg-value">{JSON.stringify(value, null, 2)}</code>
                      )}
                    </DescriptionListDescription>
                  </DescriptionListGroup>
                );
              })}
          </DescriptionList>

          <Title headingLevel="h3">Cloud-init</Title>
          {cloudInit === "" ? (
            <p className="osimg-muted">This entry has no CLOUD_INIT.</p>
          ) : (
            <CodeBlock aria-label="Cloud-init">
              <CodeBlockCode>{cloudInit}</CodeBlockCode>
            </CodeBlock>
          )}

          <Title headingLevel="h3">Image checks</Title>
          <Content component="p" className="osimg-muted">
            {checks.state === undefined
              ? "The image has not been checked."
              : checks.checkedAt
                ? `Checked ${new Date(checks.checkedAt).toLocaleString()}${checks.state === "done" ? "" : "; checking again now"}.`
                : "Being checked now."}
          </Content>
          <ul className="osimg-plain-list" aria-label="Image checks">
            {checks.checks.map((check) => (
              <li key={check.id}>
                <CheckIcon status={check.status} label={check.label} decorative /> {check.label}:{" "}
                {checkWord(check.status)}
                {check.detail ? <span className="osimg-muted"> — {check.detail}</span> : null}
              </li>
            ))}
            {checks.problems.map((p) => (
              <li key={`${p.severity}:${p.message}`}>
                <SeverityIcon severity={p.severity} /> {p.message}
              </li>
            ))}
          </ul>

          <Title headingLevel="h3">Findings</Title>
          <FindingsPanel
            findings={entry.findings}
            label={`Findings of ${written(entry, "OS_NAME") || entry.id}`}
            location={location}
            emptyText="No findings for this entry"
          />
        </section>
      </DrawerPanelBody>
    </DrawerPanelContent>
  );
}
