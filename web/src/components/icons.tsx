// Status icons in PatternFly's colours. An icon beside words that say the same is decorative (hidden
// from screen readers); an icon on its own gets a label.
import { Icon } from "@patternfly/react-core";
import CheckCircleIcon from "@patternfly/react-icons/dist/esm/icons/check-circle-icon";
import ExclamationCircleIcon from "@patternfly/react-icons/dist/esm/icons/exclamation-circle-icon";
import ExclamationTriangleIcon from "@patternfly/react-icons/dist/esm/icons/exclamation-triangle-icon";
import InProgressIcon from "@patternfly/react-icons/dist/esm/icons/in-progress-icon";
import InfoCircleIcon from "@patternfly/react-icons/dist/esm/icons/info-circle-icon";
import OutlinedCircleIcon from "@patternfly/react-icons/dist/esm/icons/outlined-circle-icon";
import OutlinedQuestionCircleIcon from "@patternfly/react-icons/dist/esm/icons/outlined-question-circle-icon";
import type { Severity } from "../../../src/catalog/findings.ts";
import type { CheckStatus } from "../catalog/verification.ts";

type Tone = "success" | "warning" | "danger" | "info";
type Glyph = typeof InfoCircleIcon;

function StatusIcon({ tone, glyph: G, label }: { tone?: Tone; glyph: Glyph; label?: string }) {
  return (
    <Icon status={tone} isInline>
      {label === undefined ? <G /> : <G aria-hidden={false} aria-label={label} />}
    </Icon>
  );
}

const SEVERITY: Record<Severity, { tone: Tone; glyph: Glyph }> = {
  error: { tone: "danger", glyph: ExclamationCircleIcon },
  warning: { tone: "warning", glyph: ExclamationTriangleIcon },
  info: { tone: "info", glyph: InfoCircleIcon },
};

export function SeverityIcon({ severity, label }: { severity: Severity; label?: string }) {
  return <StatusIcon {...SEVERITY[severity]} label={label} />;
}

export function ValidIcon({ label }: { label?: string }) {
  return <StatusIcon tone="success" glyph={CheckCircleIcon} label={label} />;
}

const CHECK: Record<CheckStatus, { tone?: Tone; glyph: Glyph; word: string }> = {
  pass: { tone: "success", glyph: CheckCircleIcon, word: "passed" },
  fail: { tone: "danger", glyph: ExclamationCircleIcon, word: "failed" },
  pending: { tone: "info", glyph: InProgressIcon, word: "in progress" },
  unknown: { tone: "warning", glyph: OutlinedQuestionCircleIcon, word: "unknown" },
  "not-checked": { glyph: OutlinedCircleIcon, word: "not checked" },
};

export function checkWord(status: CheckStatus): string {
  return CHECK[status].word;
}

/** Labelled "<check>: <outcome>", such as "Checksum verified: failed", unless words beside it say so. */
export function CheckIcon({
  status,
  label,
  decorative,
}: {
  status: CheckStatus;
  label: string;
  decorative?: boolean;
}) {
  const { tone, glyph } = CHECK[status];
  return (
    <StatusIcon tone={tone} glyph={glyph} label={decorative ? undefined : `${label}: ${checkWord(status)}`} />
  );
}
