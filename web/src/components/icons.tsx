// Status icons in PatternFly's colours, each with a text alternative for screen readers.
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

const SEVERITY: Record<Severity, { tone: Tone; icon: typeof InfoCircleIcon; label: string }> = {
  error: { tone: "danger", icon: ExclamationCircleIcon, label: "error" },
  warning: { tone: "warning", icon: ExclamationTriangleIcon, label: "warning" },
  info: { tone: "info", icon: InfoCircleIcon, label: "info" },
};

export function SeverityIcon({ severity }: { severity: Severity }) {
  const { tone, icon: Glyph, label } = SEVERITY[severity];
  return (
    <Icon status={tone} isInline>
      <Glyph role="img" aria-label={label} />
    </Icon>
  );
}

export function ValidIcon({ label = "valid" }: { label?: string }) {
  return (
    <Icon status="success" isInline>
      <CheckCircleIcon role="img" aria-label={label} />
    </Icon>
  );
}

const CHECK: Record<CheckStatus, { tone?: Tone; icon: typeof InfoCircleIcon; word: string }> = {
  pass: { tone: "success", icon: CheckCircleIcon, word: "passed" },
  fail: { tone: "danger", icon: ExclamationCircleIcon, word: "failed" },
  pending: { tone: "info", icon: InProgressIcon, word: "in progress" },
  unknown: { tone: "warning", icon: OutlinedQuestionCircleIcon, word: "unknown" },
  "not-checked": { icon: OutlinedCircleIcon, word: "not checked" },
};

export function checkWord(status: CheckStatus): string {
  return CHECK[status].word;
}

export function CheckIcon({ status, label }: { status: CheckStatus; label: string }) {
  const { tone, icon: Glyph, word } = CHECK[status];
  return (
    <Icon status={tone} isInline>
      <Glyph role="img" aria-label={`${label}: ${word}`} />
    </Icon>
  );
}
