// The catalog's YAML, editable by admins, validated as it is typed by the very parser the server uses
// (src/catalog/parse.ts). Saving sends the text with the version it was based on: when someone saved in
// between, the server refuses (409) and the text stays here, to be reloaded or saved over theirs.
import {
  Alert,
  AlertActionLink,
  Button,
  Content,
  PageSection,
  Skeleton,
  Title,
  Toolbar,
  ToolbarContent,
  ToolbarGroup,
  ToolbarItem,
} from "@patternfly/react-core";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useDeferredValue, useEffect, useMemo, useRef, useState } from "react";
import { useLocation } from "wouter";
import { countBySeverity, type Finding } from "../../../src/catalog/findings.ts";
import { parseCatalog } from "../../../src/catalog/parse.ts";
import {
  type CatalogSourceText,
  catalogQuery,
  catalogSourceQuery,
  type SaveOutcome,
  saveCatalogSource,
} from "../api/catalog.ts";
import { HttpError, requestJson } from "../api/http.ts";
import { ErrorState } from "../components/ErrorState.tsx";
import { FindingsPanel, FindingsSection } from "../components/FindingsPanel.tsx";
import { SeverityIcon, ValidIcon } from "../components/icons.tsx";
import { YamlEditor, type YamlEditorHandle } from "../editor/YamlEditor.tsx";
import { plural, sentence } from "../format.ts";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { PATHS } from "../routes.ts";

type Notice = SaveOutcome | { kind: "failed"; message: string };

function Validation({ findings, entries }: { findings: readonly Finding[]; entries: number }) {
  const counts = countBySeverity(findings);
  const warnings = counts.warning > 0 ? `, ${plural(counts.warning, "warning")}` : "";
  return (
    <span className="osimg-validation" role="status">
      {counts.error > 0 ? (
        <>
          <SeverityIcon severity="error" /> {plural(counts.error, "error")}
          {warnings} — fix the errors to save
        </>
      ) : (
        <>
          <ValidIcon /> Valid: {plural(entries, "entry", "entries")}
          {warnings}
        </>
      )}
    </span>
  );
}

function Editor({ initial, location }: { initial: CatalogSourceText; location: string }) {
  const queryClient = useQueryClient();
  const editor = useRef<YamlEditorHandle>(null);
  const [base, setBase] = useState(initial);
  const [draft, setDraft] = useState(initial.text);
  const [notice, setNotice] = useState<Notice | undefined>();
  const [saving, setSaving] = useState(false);
  const checked = useDeferredValue(draft);
  const parsed = useMemo(() => parseCatalog(checked), [checked]);
  const errors = countBySeverity(parsed.findings).error;
  const dirty = draft !== base.text;

  useEffect(() => {
    if (!dirty) return;
    const warn = (event: BeforeUnloadEvent) => event.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  const save = async (version = base.version) => {
    if (saving) return;
    setSaving(true);
    try {
      const text = draft;
      const outcome = await saveCatalogSource(text, version);
      setNotice(outcome);
      if (outcome.kind === "saved") {
        const saved = { text, version: outcome.version };
        setBase(saved);
        queryClient.setQueryData(catalogSourceQuery.queryKey, saved);
        await queryClient.invalidateQueries({ queryKey: catalogQuery.queryKey, exact: true });
      }
    } catch (error) {
      setNotice({ kind: "failed", message: error instanceof Error ? error.message : String(error) });
    } finally {
      setSaving(false);
    }
  };

  const latest = () => requestJson<CatalogSourceText>("/api/v1/catalog/source");
  const loadLatest = async () => {
    try {
      const current = await latest();
      setBase(current);
      setDraft(current.text);
      setNotice(undefined);
    } catch (error) {
      setNotice({ kind: "failed", message: error instanceof Error ? error.message : String(error) });
    }
  };
  const saveOverLatest = async () => {
    try {
      const current = await latest();
      await save(current.version);
    } catch (error) {
      setNotice({ kind: "failed", message: error instanceof Error ? error.message : String(error) });
    }
  };

  const canSave = dirty && errors === 0 && !saving;
  return (
    <>
      <PageSection>
        {notice?.kind === "saved" ? (
          <Alert
            variant="success"
            isInline
            title="Saved"
            timeout={8000}
            onTimeout={() => setNotice(undefined)}
          >
            The catalog is written to {location} and served from now on.
          </Alert>
        ) : null}
        {notice?.kind === "conflict" ? (
          <Alert
            variant="warning"
            isInline
            title="Someone else saved the catalog first"
            actionLinks={
              <>
                <AlertActionLink onClick={saveOverLatest}>Save mine over theirs</AlertActionLink>
                <AlertActionLink onClick={loadLatest}>Discard mine and load theirs</AlertActionLink>
              </>
            }
          >
            {sentence(notice.message)} Your text is still here: save it over theirs, or drop it for theirs.
          </Alert>
        ) : null}
        {notice?.kind === "invalid" ? (
          <Alert variant="danger" isInline title="The server refused the catalog">
            {sentence(notice.message)}
            <FindingsPanel
              findings={notice.findings}
              label="Findings of the refused save"
              onSelect={(f) => editor.current?.goTo(f.line, f.column)}
            />
          </Alert>
        ) : null}
        {notice?.kind === "failed" ? (
          <Alert variant="danger" isInline title="Saving failed">
            {sentence(notice.message)} Your text is still here.
          </Alert>
        ) : null}
        <Toolbar className="osimg-editor-toolbar">
          <ToolbarContent alignItems="center">
            <ToolbarItem>
              <Validation findings={parsed.findings} entries={parsed.entries.length} />
            </ToolbarItem>
            <ToolbarGroup align={{ default: "alignEnd" }}>
              <ToolbarItem>
                <Button variant="primary" onClick={() => save()} isDisabled={!canSave} isLoading={saving}>
                  Save
                </Button>
              </ToolbarItem>
              <ToolbarItem>
                <Button variant="secondary" onClick={() => setDraft(base.text)} isDisabled={!dirty || saving}>
                  Discard changes
                </Button>
              </ToolbarItem>
            </ToolbarGroup>
          </ToolbarContent>
        </Toolbar>
        <YamlEditor
          ref={editor}
          value={draft}
          onChange={setDraft}
          findings={parsed.findings}
          label={`Catalog YAML (${location})`}
          onSave={() => canSave && save()}
        />
      </PageSection>
      <PageSection>
        <FindingsSection
          id="editor-findings"
          findings={parsed.findings}
          label="Findings of the edited catalog"
          onSelect={(f) => editor.current?.goTo(f.line, f.column)}
          emptyText="No findings"
        />
      </PageSection>
    </>
  );
}

export default function CatalogEditorPage() {
  const source = useQuery(catalogSourceQuery);
  const catalog = useQuery(catalogQuery);
  const [, navigate] = useLocation();
  const namespace = useNamespace();
  const location = catalog.data?.source.location ?? "the catalog";
  const forbidden = source.error instanceof HttpError && source.error.status === 403;
  return (
    <>
      <PageSection>
        <Title headingLevel="h1">Edit catalog</Title>
        <Content component="p">
          {location} — validated as you type, by the same rules as the server.{" "}
          <Button variant="link" isInline onClick={() => navigate(withNamespace(PATHS.catalog, namespace))}>
            Back to the catalog
          </Button>
        </Content>
      </PageSection>
      {source.data ? (
        <Editor initial={source.data} location={location} />
      ) : source.isError ? (
        <PageSection isFilled>
          <ErrorState
            title={forbidden ? "Only admins can edit the catalog" : "Cannot load the catalog source"}
            error={source.error}
            onRetry={forbidden ? undefined : () => source.refetch()}
          />
        </PageSection>
      ) : (
        <PageSection isFilled aria-busy="true">
          <Skeleton height="24rem" screenreaderText="Loading the catalog source" />
        </PageSection>
      )}
    </>
  );
}
