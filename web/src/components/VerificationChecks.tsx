// The image checks of an entry (reachable, checksum, safe format, boot test): one icon each with a
// tooltip, or "not checked" until the image-intake API has reported on the entry.
import { Tooltip } from "@patternfly/react-core";
import { type CheckView, isChecked } from "../catalog/verification.ts";
import { CheckIcon, checkWord } from "./icons.tsx";

export function VerificationChecks({ checks }: { checks: readonly CheckView[] }) {
  if (!isChecked(checks)) return <span className="osimg-muted osimg-status">not checked</span>;
  return (
    <span className="osimg-checks">
      {checks.map((check) => (
        <Tooltip
          key={check.id}
          content={`${check.label}: ${checkWord(check.status)}${check.detail ? ` — ${check.detail}` : ""}`}
        >
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: focusable so that keyboard users get the tooltip */}
          <span tabIndex={0}>
            <CheckIcon status={check.status} label={check.label} />
          </span>
        </Tooltip>
      ))}
    </span>
  );
}
