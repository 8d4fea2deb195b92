// A failure in the server's words: its message and hint as sentences, in an inline alert that can be
// dismissed (a refused action, a failed pull), or as text.
import { Alert, AlertActionCloseButton } from "@patternfly/react-core";
import { HttpError } from "../api/http.ts";
import { sentence } from "../format.ts";

/** "Cannot stop a VM that is Stopping. Possible now: nothing, wait." */
export function errorText(error: unknown): string {
  if (!(error instanceof HttpError)) return sentence(error instanceof Error ? error.message : String(error));
  return `${sentence(error.message)}${error.body.hint ? ` ${sentence(error.body.hint)}` : ""}`;
}

export function ErrorAlert({
  message,
  onClose,
  className = "osimg-modal-alert",
}: {
  message: string | undefined;
  onClose: () => void;
  className?: string;
}) {
  if (!message) return null;
  return (
    <Alert
      variant="danger"
      isInline
      title={message}
      actionClose={<AlertActionCloseButton onClose={onClose} />}
      className={className}
    />
  );
}
