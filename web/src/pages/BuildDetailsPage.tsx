// One build: its state and error, the spec's findings (line:column), what it produced, its steps, and its
// log, followed live until the build ends.
import { Breadcrumb, BreadcrumbItem, Content, PageSection, Skeleton, Title } from "@patternfly/react-core";
import { Table, Tbody, Td, Th, Thead, Tr } from "@patternfly/react-table";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { type MouseEvent, useEffect, useRef, useState } from "react";
import { useLocation, useParams } from "wouter";
import { formatBytes } from "../../../src/units/quantity.ts";
import { type BuildView, buildQuery, buildsQuery, followBuildLog } from "../api/builds.ts";
import { BuildStatus, buildDuration } from "../builds/BuildStatus.tsx";
import { ErrorAlert } from "../components/ErrorAlert.tsx";
import { ErrorState } from "../components/ErrorState.tsx";
import { FindingsPanel } from "../components/FindingsPanel.tsx";
import { formatDuration, sentence } from "../format.ts";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { PATHS } from "../routes.ts";
import { useNow } from "../time.ts";

/** The log, live: lines as they come; kept scrolled to the end unless the reader scrolled up. */
function BuildLog({ id, onEnd }: { id: string; onEnd: (build: BuildView) => void }) {
  const [lines, setLines] = useState<string[]>([]);
  const [live, setLive] = useState(true);
  const box = useRef<HTMLPreElement>(null);
  const atEnd = useRef(true);
  const ended = useRef(onEnd);
  ended.current = onEnd;
  useEffect(() => {
    setLive(true);
    return followBuildLog(id, {
      onStart: () => setLines([]),
      onLine: (line) => setLines((all) => [...all, line]),
      onEnd: (build) => {
        setLive(false);
        ended.current(build);
      },
    });
  }, [id]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: scroll when lines arrive
  useEffect(() => {
    const el = box.current;
    if (el && atEnd.current) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <>
      <Title headingLevel="h2" className="osimg-section">
        Log {live ? <span className="osimg-muted">(live)</span> : null}
      </Title>
      <pre
        ref={box}
        className="osimg-build-log"
        role="log"
        aria-label={`Log of build ${id}`}
        // Scrollable content must be reachable by keyboard.
        // biome-ignore lint/a11y/noNoninteractiveTabindex: see above
        tabIndex={0}
        onScroll={(event) => {
          const el = event.currentTarget;
          atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.length > 0 ? lines.join("\n") : live ? "Waiting for the build's output…" : "(no output)"}
      </pre>
    </>
  );
}

function Outputs({ build }: { build: BuildView }) {
  const outputs = build.record?.outputs ?? [];
  if (outputs.length === 0) return null;
  return (
    <>
      <Title headingLevel="h2" className="osimg-section">
        Outputs
      </Title>
      <Table aria-label="Outputs" variant="compact" gridBreakPoint="grid-md">
        <Thead>
          <Tr>
            <Th>Name</Th>
            <Th>Kind</Th>
            <Th>Size</Th>
            <Th>Digest</Th>
          </Tr>
        </Thead>
        <Tbody>
          {outputs.map((o) => (
            <Tr key={o.name}>
              <Td dataLabel="Name">
                {o.name}
                <span className="osimg-hint">{o.path}</span>
              </Td>
              <Td dataLabel="Kind">{o.kind}</Td>
              <Td dataLabel="Size">{o.size !== undefined ? formatBytes(o.size) : "—"}</Td>
              <Td dataLabel="Digest">
                <code className="osimg-value">
                  {o.manifestDigest ?? (o.sha256 ? `sha256:${o.sha256}` : "—")}
                </code>
              </Td>
            </Tr>
          ))}
        </Tbody>
      </Table>
    </>
  );
}

function Steps({ build }: { build: BuildView }) {
  const steps = build.record?.steps ?? [];
  if (steps.length === 0) return null;
  return (
    <>
      <Title headingLevel="h2" className="osimg-section">
        Steps
      </Title>
      <Table aria-label="Steps" variant="compact" gridBreakPoint="grid-md">
        <Thead>
          <Tr>
            <Th>Step</Th>
            <Th>Time</Th>
            <Th>Cached</Th>
          </Tr>
        </Thead>
        <Tbody>
          {steps.map((s) => (
            <Tr key={s.id}>
              <Td dataLabel="Step">
                <code>{s.id}</code>
              </Td>
              <Td dataLabel="Time">{formatDuration(s.ms)}</Td>
              <Td dataLabel="Cached">{s.cached ? "yes" : "no"}</Td>
            </Tr>
          ))}
        </Tbody>
      </Table>
    </>
  );
}

export default function BuildDetailsPage() {
  const { id = "" } = useParams<{ id: string }>();
  const client = useQueryClient();
  const query = useQuery(buildQuery(id));
  const now = useNow(1000);
  const namespace = useNamespace();
  const [, navigate] = useLocation();
  const [dismissed, setDismissed] = useState(false);
  const back = withNamespace(PATHS.builds, namespace);
  const follow = (event: MouseEvent) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(back);
  };
  const build = query.data;
  return (
    <>
      <PageSection padding={{ default: "noPadding" }} className="osimg-breadcrumb">
        <Breadcrumb>
          <BreadcrumbItem to={back} onClick={follow}>
            Builds
          </BreadcrumbItem>
          <BreadcrumbItem isActive>{id}</BreadcrumbItem>
        </Breadcrumb>
      </PageSection>
      <PageSection isFilled>
        {build ? (
          <>
            <Title headingLevel="h1">Build {build.id}</Title>
            <Content component="p">
              <BuildStatus build={build} /> · {build.kind} ·{" "}
              {build.runner === "cluster" ? "a Kubernetes Job" : "on this server"} · submitted{" "}
              {new Date(build.createdAt).toLocaleString()} · {buildDuration(build, now)}
            </Content>
            {!dismissed ? (
              <ErrorAlert
                message={build.error ? `The build failed: ${sentence(build.error)}` : undefined}
                onClose={() => setDismissed(true)}
              />
            ) : null}
            {build.findings && build.findings.length > 0 ? (
              <>
                <Title headingLevel="h2" className="osimg-section">
                  Findings of the spec
                </Title>
                <FindingsPanel findings={build.findings} label="Findings of the spec" location="the spec" />
              </>
            ) : null}
            <Outputs build={build} />
            <Steps build={build} />
            <BuildLog
              id={build.id}
              onEnd={(ended) => {
                client.setQueryData(buildQuery(id).queryKey, ended);
                void client.invalidateQueries({ queryKey: buildsQuery.queryKey, exact: true });
              }}
            />
          </>
        ) : query.isError ? (
          <ErrorState title={`Cannot load build ${id}`} error={query.error} onRetry={() => query.refetch()} />
        ) : (
          <Skeleton height="12rem" screenreaderText={`Loading build ${id}`} />
        )}
      </PageSection>
    </>
  );
}
