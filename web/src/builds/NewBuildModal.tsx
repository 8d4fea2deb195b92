// The New build dialog: the kind, the spec (TOML, prefilled with a small example that builds as it is),
// the files the spec names (copy_files src, chroot_script path) each under a relative path that can be
// edited, and for the kinds that make an OCI image where to push it. A refused spec (400) keeps the text
// and lists the server's findings, each moving the cursor to its line. Loaded when first opened.
import {
  Alert,
  Button,
  Checkbox,
  Form,
  FormGroup,
  FormHelperText,
  FormSelect,
  FormSelectOption,
  HelperText,
  HelperTextItem,
  Modal,
  ModalBody,
  ModalFooter,
  ModalHeader,
  TextInput,
} from "@patternfly/react-core";
import { useId, useRef, useState } from "react";
import type { Finding } from "../../../src/catalog/findings.ts";
import { formatBytes } from "../../../src/units/quantity.ts";
import {
  type BuildKind,
  type BuildRequest,
  type BuildView,
  specFindings,
  submitBuild,
} from "../api/builds.ts";
import { errorText } from "../components/ErrorAlert.tsx";
import { FindingsPanel } from "../components/FindingsPanel.tsx";
import { YamlEditor, type YamlEditorHandle } from "../editor/YamlEditor.tsx";
import { plural } from "../format.ts";
import { EXAMPLE_SPEC, isPushable, KINDS } from "./example.ts";

export interface NewBuildModalProps {
  onClose: () => void;
  onSubmitted: (build: BuildView) => void;
}

/** A file to send: its bytes (base64) under a path relative to the spec, which the user may edit. */
interface SpecFile {
  key: number;
  name: string;
  size: number;
  path: string;
  data: string;
}

/** The request body's limit is 1.5 MiB; base64 makes files a third larger. */
const FILES_LIMIT = 1024 * 1024;

export function base64(bytes: Uint8Array): string {
  let binary = "";
  // In slices: String.fromCharCode takes its arguments on the stack.
  for (let i = 0; i < bytes.length; i += 0x8000)
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function pathProblem(path: string, paths: readonly string[]): string | undefined {
  if (path.trim() === "") return "Name the path the spec uses for this file.";
  if (path.startsWith("/") || path.split("/").includes(".."))
    return "A path relative to the spec, inside its directory.";
  if (paths.filter((p) => p === path).length > 1) return "Another file has this path.";
  return undefined;
}

type Refusal =
  | { kind: "findings"; message: string; findings: Finding[] }
  | { kind: "error"; message: string };

export default function NewBuildModal({ onClose, onSubmitted }: NewBuildModalProps) {
  const idPrefix = `new-build-${useId().replaceAll(":", "")}`;
  const id = (name: string) => `${idPrefix}-${name}`;
  const editor = useRef<YamlEditorHandle>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const nextKey = useRef(0);
  const [kind, setKind] = useState<BuildKind>("vm-img");
  const [spec, setSpec] = useState(EXAMPLE_SPEC);
  const [files, setFiles] = useState<SpecFile[]>([]);
  const [readError, setReadError] = useState<string | undefined>();
  const [reference, setReference] = useState("");
  const [tlsVerify, setTlsVerify] = useState(true);
  const [sending, setSending] = useState(false);
  const [refusal, setRefusal] = useState<Refusal | undefined>();

  const pushable = isPushable(kind);
  const paths = files.map((f) => f.path);
  const problems = files.map((f) => pathProblem(f.path, paths));
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const tooLarge = total > FILES_LIMIT;
  const canSubmit = !sending && spec.trim() !== "" && problems.every((p) => p === undefined) && !tooLarge;

  const addFiles = async (list: FileList | null) => {
    setReadError(undefined);
    const added: SpecFile[] = [];
    for (const file of Array.from(list ?? [])) {
      try {
        const data = base64(new Uint8Array(await file.arrayBuffer()));
        added.push({ key: nextKey.current++, name: file.name, size: file.size, path: file.name, data });
      } catch (error) {
        setReadError(`Cannot read ${file.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    setFiles((current) => [...current, ...added]);
    if (fileInput.current) fileInput.current.value = "";
  };

  const submit = async () => {
    if (!canSubmit) return;
    const request: BuildRequest = { spec, kind };
    if (files.length > 0) request.files = Object.fromEntries(files.map((f) => [f.path, f.data]));
    if (pushable && reference.trim() !== "") request.push = { reference: reference.trim(), tlsVerify };
    setSending(true);
    setRefusal(undefined);
    try {
      const build = await submitBuild(request);
      onSubmitted(build);
    } catch (error) {
      const findings = specFindings(error);
      setRefusal(
        findings.length > 0
          ? { kind: "findings", message: errorText(error), findings }
          : { kind: "error", message: errorText(error) },
      );
      setSending(false);
    }
  };

  const shownFindings = refusal?.kind === "findings" ? refusal.findings : [];
  return (
    <Modal
      isOpen
      onClose={onClose}
      variant="large"
      aria-labelledby={id("title")}
      className="osimg-new-build"
      elementToFocus={`#${id("kind")}`}
    >
      <ModalHeader
        title="New build"
        labelId={id("title")}
        description="The server validates the spec at once and builds it in the background; its page follows the log."
      />
      <ModalBody>
        {refusal?.kind === "findings" ? (
          <Alert variant="danger" isInline title="The server refused the spec" className="osimg-modal-alert">
            {refusal.message} Fix the {plural(refusal.findings.length, "finding")} below and submit again.
            <FindingsPanel
              findings={refusal.findings}
              label="Findings of the refused spec"
              onSelect={(f) => editor.current?.goTo(f.line, f.column)}
            />
          </Alert>
        ) : null}
        {refusal?.kind === "error" ? (
          <Alert variant="danger" isInline title="The build was not submitted" className="osimg-modal-alert">
            {refusal.message}
          </Alert>
        ) : null}
        <Form
          id={id("form")}
          onSubmit={(event) => {
            event.preventDefault();
            void submit();
          }}
        >
          <FormGroup label="Kind" fieldId={id("kind")} isRequired>
            <FormSelect
              id={id("kind")}
              value={kind}
              onChange={(_event, value) => setKind(value as BuildKind)}
              aria-describedby={id("kind-help")}
            >
              {KINDS.map((k) => (
                <FormSelectOption key={k.kind} value={k.kind} label={`${k.kind} — ${k.description}`} />
              ))}
            </FormSelect>
            <FormHelperText>
              <HelperText id={id("kind-help")}>
                <HelperTextItem>
                  {pushable
                    ? "An OCI image: kept in the server's data directory, and pushed if you name where."
                    : "Kept in the server's data directory."}
                </HelperTextItem>
              </HelperText>
            </FormHelperText>
          </FormGroup>
          <FormGroup label="Spec (TOML)" fieldId={id("spec")} isRequired>
            <YamlEditor
              ref={editor}
              id={id("spec")}
              value={spec}
              onChange={setSpec}
              findings={shownFindings}
              label="Spec (TOML)"
              describedBy={id("spec-help")}
              size="compact"
              onSave={() => void submit()}
            />
            <FormHelperText>
              <HelperText id={id("spec-help")}>
                <HelperTextItem>
                  The sections of docs/builder.md: [from_repo], [[users]], [[copy_files]], [chroot_script],
                  [catalog]… The example builds as it is.
                </HelperTextItem>
              </HelperText>
            </FormHelperText>
          </FormGroup>
          <FormGroup label="Files" fieldId={id("files")}>
            <div className="osimg-upload-row">
              <Button variant="secondary" size="sm" onClick={() => fileInput.current?.click()}>
                Add files…
              </Button>
              <input
                ref={fileInput}
                id={id("files")}
                type="file"
                multiple
                hidden
                aria-label="Files the spec names"
                onChange={(event) => void addFiles(event.currentTarget.files)}
              />
              <span className="osimg-muted">
                {files.length > 0 ? `${plural(files.length, "file")}, ${formatBytes(total)}` : "Optional"}
              </span>
            </div>
            {files.length > 0 ? (
              <ul className="osimg-build-files" aria-label="Files to send">
                {files.map((f, i) => (
                  <li key={f.key}>
                    <TextInput
                      id={id(`file-${f.key}`)}
                      value={f.path}
                      onChange={(_event, value) =>
                        setFiles((current) =>
                          current.map((c) => (c.key === f.key ? { ...c, path: value } : c)),
                        )
                      }
                      aria-label={`Path of ${f.name}`}
                      validated={problems[i] ? "error" : "default"}
                      aria-describedby={problems[i] ? id(`file-${f.key}-problem`) : undefined}
                    />
                    <span className="osimg-muted">{formatBytes(f.size)}</span>
                    <Button
                      variant="link"
                      isInline
                      onClick={() => setFiles((current) => current.filter((c) => c.key !== f.key))}
                      aria-label={`Remove ${f.name}`}
                    >
                      Remove
                    </Button>
                    {problems[i] ? (
                      <HelperText id={id(`file-${f.key}-problem`)}>
                        <HelperTextItem variant="error">{problems[i]}</HelperTextItem>
                      </HelperText>
                    ) : null}
                  </li>
                ))}
              </ul>
            ) : null}
            <FormHelperText>
              <HelperText>
                {readError ? <HelperTextItem variant="error">{readError}</HelperTextItem> : null}
                {tooLarge ? (
                  <HelperTextItem variant="error">
                    {`${formatBytes(total)} is more than a request carries (${formatBytes(FILES_LIMIT)} of files): build it with \`osimg build\` instead.`}
                  </HelperTextItem>
                ) : (
                  <HelperTextItem>
                    The files the spec names (copy_files src, chroot_script path), each under the path it
                    uses, relative to the spec.
                  </HelperTextItem>
                )}
              </HelperText>
            </FormHelperText>
          </FormGroup>
          {pushable ? (
            <FormGroup label="Push to" fieldId={id("push")}>
              <TextInput
                id={id("push")}
                value={reference}
                onChange={(_event, value) => setReference(value)}
                placeholder="REGISTRY/REPOSITORY:TAG"
                aria-describedby={id("push-help")}
                spellCheck={false}
                autoComplete="off"
              />
              <Checkbox
                id={id("tls")}
                label="Verify TLS"
                isChecked={tlsVerify}
                onChange={(_event, checked) => setTlsVerify(checked)}
                isDisabled={reference.trim() === ""}
              />
              <FormHelperText>
                <HelperText id={id("push-help")}>
                  <HelperTextItem>
                    Optional: the server pushes the image there once it is built.
                  </HelperTextItem>
                </HelperText>
              </FormHelperText>
            </FormGroup>
          ) : null}
        </Form>
      </ModalBody>
      <ModalFooter>
        <Button variant="primary" type="submit" form={id("form")} isDisabled={!canSubmit} isLoading={sending}>
          Submit
        </Button>
        <Button variant="link" onClick={onClose}>
          Cancel
        </Button>
      </ModalFooter>
    </Modal>
  );
}
