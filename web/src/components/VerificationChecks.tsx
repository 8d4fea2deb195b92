// The image checks of an entry (reachable, checksum, safe format, boot test): one icon each with a
// tooltip, or "not checked" until the server's image verifier has reported on the entry.
import { Tooltip } from "@patternfly/react-core";
import type { EntryChecks } from "../catalog/verification.ts";
import { CheckIcon, checkWord } from "./icons.tsx";

export function VerificationChecks({ result }: { result: EntryChecks }) {
  if (result.state === undefined) return <span className="osimg-muted osimg-status">not checked</span>;
  return (
    <span className="osimg-checks">
      {result.checks.map((check) => (
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
