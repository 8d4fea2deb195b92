// The Create VM dialog: pick an operating system from the Kube-DC list of OS images and vCPU, memory and
// storage fill in with its minimums; every field is checked as it is typed by the server's own rules on
// the served catalog (a size below a minimum is an inline error, and the dialog cannot go on); SSH keys
// pasted or read from .pub files; the cloud-init editor prefilled with the entry's CLOUD_INIT. Review
// shows what the server will create (its dry run); Create creates it. Loaded when first opened.
import {
  Alert,
  Button,
  CodeBlock,
  CodeBlockCode,
  DescriptionList,
  DescriptionListDescription,
  DescriptionListGroup,
  DescriptionListTerm,
  Form,
  FormGroup,
  FormHelperText,
  FormSelect,
  FormSelectOption,
  Grid,
  GridItem,
  HelperText,
  HelperTextItem,
  Modal,
  ModalBody,
  ModalFooter,
  ModalHeader,
  Skeleton,
  TextArea,
  TextInput,
  Title,
} from "@patternfly/react-core";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { type ReactNode, useDeferredValue, useEffect, useId, useMemo, useRef, useState } from "react";
import type { Finding } from "../../../src/catalog/findings.ts";
import { findEntry } from "../../../src/vms/request.ts";
import { catalogQuery, type OsImage, osImagesQuery } from "../api/catalog.ts";
import { HttpError } from "../api/http.ts";
import { createVm, previewVm, type Rendered, type Vm, vmKey, vmsKey, withVm } from "../api/vms.ts";
import { errorText } from "../components/ErrorAlert.tsx";
import { ErrorState } from "../components/ErrorState.tsx";
import { YamlEditor } from "../editor/YamlEditor.tsx";
import { plural, sentence } from "../format.ts";
import {
  checkForm,
  chooseImage,
  EMPTY_FORM,
  FIELDS,
  type FieldProblem,
  type FormField,
  type FormProblems,
  hasProblems,
  keyLines,
  minimumsOf,
  problemsOf,
  requestOf,
  type VmForm,
} from "./form.ts";
import { renderedText } from "./status.ts";

export interface CreateVmModalProps {
  namespace: string;
  /** The OS_NAME to start with (the catalog entry the dialog was opened from). */
  image?: string;
  onClose: () => void;
  onCreated: (vm: Vm) => void;
}

type Step = "form" | "review";

/** What the server said about a field, kept while the field still has the value it was said about. */
type ServerProblems = Partial<Record<FormField | "form", { value: string; problems: FieldProblem[] }>>;

function fieldValue(form: VmForm, field: FormField | "form"): string {
  return field === "form" ? JSON.stringify(form) : form[field];
}

function serverProblemsOf(problems: FormProblems, form: VmForm): ServerProblems {
  const out: ServerProblems = {};
  for (const [field, list] of Object.entries(problems) as [FormField | "form", FieldProblem[]][])
    out[field] = { value: fieldValue(form, field), problems: list };
  return out;
}

function Problems({ id, problems, helper }: { id: string; problems: FieldProblem[]; helper?: ReactNode }) {
  if (problems.length === 0 && !helper) return null;
  return (
    <FormHelperText>
      <HelperText id={id} aria-live="polite">
        {problems.length > 0 ? (
          problems.map((p) => (
            <HelperTextItem key={p.message} variant="error">
              {sentence(p.message)}
              {p.hint ? ` ${sentence(p.hint)}` : ""}
            </HelperTextItem>
          ))
        ) : (
          <HelperTextItem>{helper}</HelperTextItem>
        )}
      </HelperText>
    </FormHelperText>
  );
}

function SshKeysField({
  id,
  value,
  onChange,
  problems,
}: {
  id: string;
  value: string;
  onChange: (value: string) => void;
  problems: FieldProblem[];
}) {
  const file = useRef<HTMLInputElement>(null);
  const [readError, setReadError] = useState<string | undefined>();
  const upload = async (files: FileList | null) => {
    setReadError(undefined);
    const added: string[] = [];
    for (const f of Array.from(files ?? [])) {
      try {
        added.push((await f.text()).trim());
      } catch (error) {
        setReadError(`cannot read ${f.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (added.length > 0) onChange([value.trim(), ...added].filter(Boolean).join("\n"));
    if (file.current) file.current.value = "";
  };
  const count = keyLines(value).length;
  const all = readError ? [...problems, { message: readError }] : problems;
  return (
    <FormGroup label="SSH public keys" fieldId={id}>
      <TextArea
        id={id}
        value={value}
        onChange={(_e, v) => onChange(v)}
        rows={3}
        resizeOrientation="vertical"
        placeholder="ssh-ed25519 AAAA… user@host (one key per line)"
        validated={all.length > 0 ? "error" : "default"}
        aria-describedby={`${id}-help`}
        spellCheck={false}
        autoComplete="off"
      />
      <div className="osimg-upload-row">
        <Button variant="secondary" size="sm" onClick={() => file.current?.click()}>
          Upload a .pub file
        </Button>
        <input
          ref={file}
          type="file"
          accept=".pub,text/plain"
          multiple
          hidden
          aria-label="SSH public key files"
          onChange={(e) => upload(e.currentTarget.files)}
        />
        <span className="osimg-muted">{count > 0 ? plural(count, "key") : "Optional"}</span>
      </div>
      <Problems id={`${id}-help`} problems={all} helper="Each key may log in as the image's cloud user." />
    </FormGroup>
  );
}

function SizeField({
  id,
  label,
  value,
  onChange,
  problems,
  minimum,
  unit,
  numeric,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  problems: FieldProblem[];
  minimum?: string;
  unit?: string;
  numeric?: boolean;
}) {
  return (
    <FormGroup label={label} fieldId={id} isRequired={numeric}>
      <TextInput
        id={id}
        value={value}
        onChange={(_e, v) => onChange(v)}
        validated={problems.length > 0 ? "error" : "default"}
        aria-describedby={`${id}-help`}
        inputMode={numeric ? "numeric" : undefined}
        autoComplete="off"
        spellCheck={false}
      />
      <Problems
        id={`${id}-help`}
        problems={problems}
        helper={minimum ? `At least ${minimum}${unit ?? ""}` : (unit ?? "")}
      />
    </FormGroup>
  );
}

/** vCPU, memory and storage: what the helper text says when the entry sets no minimum. */
const SIZES = [
  { field: "cpu", label: "vCPU", numeric: true, fallback: undefined },
  { field: "memory", label: "Memory", numeric: false, fallback: "A size such as 2Gi" },
  { field: "storage", label: "Storage", numeric: false, fallback: "Empty: the image's size" },
] as const;

function Review({
  form,
  namespace,
  rendered,
  entryName,
}: {
  form: VmForm;
  namespace: string;
  rendered: Rendered | undefined;
  entryName: string;
}) {
  const { request } = requestOf(form);
  const rows: [string, string][] = [
    ["Name", form.name],
    ["Project", namespace],
    ["Operating system", entryName],
    ["vCPU", String(request.cpu ?? "")],
    ["Memory", request.memory ?? "the minimum"],
    ["Storage", request.storage ?? "the image's size"],
    ["SSH keys", plural(request.sshKeys?.length ?? 0, "key")],
    ["Password", form.password ? "set" : "none"],
    [
      "Cloud-init",
      form.cloudInit.trim() ? plural(form.cloudInit.trimEnd().split("\n").length, "line") : "none",
    ],
  ];
  return (
    <>
      <DescriptionList isHorizontal isCompact aria-label="The VM to create">
        {rows.map(([term, value]) => (
          <DescriptionListGroup key={term}>
            <DescriptionListTerm>{term}</DescriptionListTerm>
            <DescriptionListDescription>{value}</DescriptionListDescription>
          </DescriptionListGroup>
        ))}
      </DescriptionList>
      <Title headingLevel="h3" className="osimg-section">
        {rendered?.format === "yaml" ? "Kubernetes manifests" : "QEMU command line"} the server will run
      </Title>
      {rendered ? (
        <CodeBlock aria-label="What will be created">
          <CodeBlockCode className="osimg-review-code">{renderedText(rendered)}</CodeBlockCode>
        </CodeBlock>
      ) : (
        <Skeleton height="10rem" screenreaderText="Asking the server what it will create" />
      )}
    </>
  );
}

function CreateVmForm({
  namespace,
  osImages,
  catalogEntries,
  initialImage,
  onClose,
  onCreated,
  titleId,
  idPrefix,
}: {
  namespace: string;
  osImages: OsImage[];
  catalogEntries: Parameters<typeof checkForm>[1];
  initialImage?: string;
  onClose: () => void;
  onCreated: (vm: Vm) => void;
  titleId: string;
  /** Prefix of the fields' ids. */
  idPrefix: string;
}) {
  const client = useQueryClient();
  const id = (field: string) => `${idPrefix}-${field}`;
  // Shown after the dialog opened (its data arrived): the focus moves to the name here.
  useEffect(() => document.getElementById(`${idPrefix}-name`)?.focus(), [idPrefix]);
  const [form, setForm] = useState<VmForm>(() => {
    const chosen = osImages.find((i) => i.OS_NAME === initialImage);
    return chosen ? chooseImage(EMPTY_FORM, chosen) : EMPTY_FORM;
  });
  const [touched, setTouched] = useState<Set<FormField>>(() => new Set());
  const [step, setStep] = useState<Step>("form");
  const [busy, setBusy] = useState(false);
  const [rendered, setRendered] = useState<Rendered | undefined>();
  const [server, setServer] = useState<ServerProblems>({});
  const [failure, setFailure] = useState<string | undefined>();

  const checked = useDeferredValue(form);
  const local = useMemo(
    () => checkForm(checked, catalogEntries, namespace),
    [checked, catalogEntries, namespace],
  );
  const entry = findEntry(catalogEntries, form.image);
  const minimums = minimumsOf(entry);

  const set = (field: FormField) => (value: string) => {
    setForm((f) => ({ ...f, [field]: value }));
    setTouched((t) => new Set(t).add(field));
  };
  const chooseOs = (name: string) => {
    const image = osImages.find((i) => i.OS_NAME === name);
    setForm((f) => (image ? chooseImage(f, image) : { ...f, image: "" }));
    setTouched((t) => new Set(t).add("image"));
  };

  /** What a field shows: the server's word while the value is unchanged, else the rules' once touched. */
  const shown = (field: FormField | "form"): FieldProblem[] => {
    const said = server[field];
    if (said && said.value === fieldValue(form, field)) return said.problems;
    if (field === "form") return local.form ?? [];
    return touched.has(field) || step === "review" ? (local[field] ?? []) : [];
  };
  const stale = checked !== form;
  const blocked =
    hasProblems(local) ||
    Object.entries(server).some(
      ([field, said]) => said && said.value === fieldValue(form, field as FormField | "form"),
    );

  /** A refusal in the server's words, on the fields it names; back to the form to fix them. */
  const refused = (error: unknown) => {
    if (error instanceof HttpError && error.status === 422 && error.body.details) {
      setServer(serverProblemsOf(problemsOf(error.body.details, form), form));
      setStep("form");
      setTouched(new Set(FIELDS));
      return;
    }
    if (error instanceof HttpError && error.status === 409 && error.body.error === "exists") {
      setServer(
        serverProblemsOf({ name: [{ message: error.body.message, hint: "choose another name" }] }, form),
      );
      setStep("form");
      return;
    }
    setFailure(errorText(error));
  };

  const review = async () => {
    setTouched(new Set(FIELDS));
    if (hasProblems(checkForm(form, catalogEntries, namespace))) return;
    setFailure(undefined);
    setRendered(undefined);
    setStep("review");
    setBusy(true);
    try {
      setRendered(await previewVm(namespace, requestOf(form).request));
    } catch (error) {
      refused(error);
    } finally {
      setBusy(false);
    }
  };

  const create = async () => {
    setFailure(undefined);
    setBusy(true);
    try {
      const vm = await createVm(namespace, requestOf(form).request);
      // In the list at once; the event stream brings what follows (import, boot, ready).
      client.setQueryData(vmsKey(namespace), (list: Vm[] | undefined) => withVm(list, vm));
      client.setQueryData(vmKey(namespace, vm.name), vm);
      void client.invalidateQueries({ queryKey: vmsKey(namespace), exact: true });
      onCreated(vm);
    } catch (error) {
      refused(error);
    } finally {
      setBusy(false);
    }
  };

  const cloudInitFindings: Finding[] = shown("cloudInit")
    .filter((p) => p.line !== undefined)
    .map((p) => ({
      severity: "error",
      code: "cloud-init",
      path: "cloudInit",
      line: p.line as number,
      column: p.column ?? 1,
      message: p.message,
    }));
  const formProblems = shown("form");

  return (
    <>
      <ModalHeader
        title={step === "form" ? "Create VM" : `Review: ${form.name}`}
        labelId={titleId}
        description={
          step === "form"
            ? `In project ${namespace}. Sizes start at the operating system's minimums.`
            : "Nothing is created until you choose Create."
        }
      />
      <ModalBody>
        {failure ? (
          <Alert variant="danger" isInline title="The server could not do it" className="osimg-modal-alert">
            {failure}
          </Alert>
        ) : null}
        {formProblems.length > 0 ? (
          <Alert variant="danger" isInline title="The request is refused" className="osimg-modal-alert">
            {formProblems.map((p) => sentence(p.message)).join(" ")}
          </Alert>
        ) : null}
        {step === "review" ? (
          <Review form={form} namespace={namespace} rendered={rendered} entryName={form.image} />
        ) : (
          <Form
            id={id("form")}
            onSubmit={(e) => {
              e.preventDefault();
              if (!blocked && !stale) void review();
            }}
            noValidate
          >
            <FormGroup label="Name" fieldId={id("name")} isRequired>
              <TextInput
                id={id("name")}
                value={form.name}
                onChange={(_e, v) => set("name")(v)}
                validated={shown("name").length > 0 ? "error" : "default"}
                aria-describedby={`${id("name")}-help`}
                autoComplete="off"
                spellCheck={false}
                isRequired
              />
              <Problems
                id={`${id("name")}-help`}
                problems={shown("name")}
                helper="Lower-case letters, digits and '-', at most 63 characters"
              />
            </FormGroup>
            <FormGroup label="Operating system" fieldId={id("image")} isRequired>
              <FormSelect
                id={id("image")}
                value={form.image}
                onChange={(_e, v) => chooseOs(v)}
                validated={shown("image").length > 0 ? "error" : "default"}
                aria-describedby={`${id("image")}-help`}
              >
                <FormSelectOption value="" label="Choose an operating system" isPlaceholder isDisabled />
                {osImages.map((image) => (
                  <FormSelectOption
                    key={String(image.OS_NAME)}
                    value={String(image.OS_NAME)}
                    label={String(image.OS_NAME)}
                  />
                ))}
              </FormSelect>
              <Problems
                id={`${id("image")}-help`}
                problems={shown("image")}
                helper={
                  entry
                    ? `Cloud user ${String(entry.values.CLOUD_USER ?? "")}, firmware ${entry.spec.firmware}`
                    : undefined
                }
              />
            </FormGroup>
            <Grid hasGutter md={4}>
              {SIZES.map(({ field, label, numeric, fallback }) => (
                <GridItem key={field}>
                  <SizeField
                    id={id(field)}
                    label={label}
                    value={form[field]}
                    onChange={set(field)}
                    problems={shown(field)}
                    minimum={minimums[field]}
                    unit={minimums[field] ? undefined : fallback}
                    numeric={numeric}
                  />
                </GridItem>
              ))}
            </Grid>
            <SshKeysField
              id={id("ssh")}
              value={form.sshKeys}
              onChange={set("sshKeys")}
              problems={shown("sshKeys")}
            />
            <FormGroup label="Password" fieldId={id("password")}>
              <TextInput
                id={id("password")}
                type="password"
                value={form.password}
                onChange={(_e, v) => set("password")(v)}
                validated={shown("password").length > 0 ? "error" : "default"}
                aria-describedby={`${id("password")}-help`}
                autoComplete="new-password"
              />
              <Problems
                id={`${id("password")}-help`}
                problems={shown("password")}
                helper="Optional: for the console login of the cloud user; never shown again"
              />
            </FormGroup>
            <FormGroup label="Cloud-init" fieldId={id("cloudinit")}>
              <YamlEditor
                id={id("cloudinit")}
                value={form.cloudInit}
                onChange={set("cloudInit")}
                findings={cloudInitFindings}
                label="Cloud-init"
                describedBy={`${id("cloudinit")}-help`}
                size="compact"
              />
              <Problems
                id={`${id("cloudinit")}-help`}
                problems={shown("cloudInit")}
                helper="The image's CLOUD_INIT: edit it for this VM. SSH keys and the password are added to it."
              />
            </FormGroup>
          </Form>
        )}
      </ModalBody>
      <ModalFooter>
        {step === "form" ? (
          <Button variant="primary" type="submit" form={id("form")} isDisabled={blocked || stale || busy}>
            Review
          </Button>
        ) : (
          <>
            <Button
              variant="primary"
              onClick={create}
              isDisabled={busy || rendered === undefined}
              isLoading={busy && rendered !== undefined}
            >
              Create
            </Button>
            <Button variant="secondary" onClick={() => setStep("form")} isDisabled={busy}>
              Back
            </Button>
          </>
        )}
        <Button variant="link" onClick={onClose}>
          Cancel
        </Button>
      </ModalFooter>
    </>
  );
}

export default function CreateVmModal({ namespace, image, onClose, onCreated }: CreateVmModalProps) {
  const osImages = useQuery(osImagesQuery(namespace));
  const catalog = useQuery(catalogQuery);
  const idPrefix = `create-vm-${useId().replaceAll(":", "")}`;
  const titleId = `${idPrefix}-title`;
  const error = osImages.error ?? catalog.error;
  // The name comes first: typing starts there (or once the form is shown; see CreateVmForm).
  const [ready] = useState(() => osImages.data !== undefined && catalog.data !== undefined);
  return (
    <Modal
      isOpen
      onClose={onClose}
      variant="medium"
      aria-labelledby={titleId}
      className="osimg-create-vm"
      elementToFocus={ready ? `#${idPrefix}-name` : undefined}
    >
      {osImages.data && catalog.data ? (
        <CreateVmForm
          namespace={namespace}
          osImages={osImages.data}
          catalogEntries={catalog.data.entries}
          initialImage={image}
          onClose={onClose}
          onCreated={onCreated}
          titleId={titleId}
          idPrefix={idPrefix}
        />
      ) : (
        <>
          <ModalHeader title="Create VM" labelId={titleId} />
          <ModalBody>
            {error ? (
              <ErrorState
                title="Cannot load the operating systems"
                error={error}
                onRetry={() => {
                  void osImages.refetch();
                  void catalog.refetch();
                }}
              />
            ) : (
              <Skeleton height="20rem" screenreaderText="Loading the operating systems" />
            )}
          </ModalBody>
        </>
      )}
    </Modal>
  );
}
