// One VM: its status and actions, then tabs: the overview (spec, SSH command, conditions with reason,
// message and time, what happened to it (its events), notes), the serial console, the VNC display, and
// what the provider runs. The consoles are loaded (and connect) only when their tab is opened. Live
// through the VM event stream.
import {
  Breadcrumb,
  BreadcrumbItem,
  Button,
  ClipboardCopy,
  CodeBlock,
  CodeBlockCode,
  Content,
  DescriptionList,
  DescriptionListDescription,
  DescriptionListGroup,
  DescriptionListTerm,
  EmptyState,
  EmptyStateActions,
  EmptyStateBody,
  EmptyStateFooter,
  PageSection,
  Skeleton,
  Tab,
  Tabs,
  TabTitleText,
  Title,
} from "@patternfly/react-core";
import { Table, Tbody, Td, Th, Thead, Tr } from "@patternfly/react-table";
import { useQuery } from "@tanstack/react-query";
import { lazy, type MouseEvent, type ReactNode, Suspense, useState } from "react";
import { useLocation, useParams, useSearchParams } from "wouter";
import { HttpError } from "../api/http.ts";
import { consoleSocket, manifestQuery, useVmEvents, type Vm, vmQuery } from "../api/vms.ts";
import { ErrorAlert } from "../components/ErrorAlert.tsx";
import { ErrorState } from "../components/ErrorState.tsx";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { PATHS } from "../routes.ts";
import { useNow } from "../time.ts";
import { useVmActions, VmActionButtons } from "../vms/actions.tsx";
import { age, renderedText, sshCommand } from "../vms/status.ts";
import { VmEventsTable } from "../vms/VmEventsTable.tsx";
import { VmStatus } from "../vms/VmStatus.tsx";

const SerialConsole = lazy(() => import("../consoles/SerialConsole.tsx"));
const VncConsole = lazy(() => import("../consoles/VncConsole.tsx"));

const TABS = ["overview", "console", "vnc", "manifest"] as const;
type TabKey = (typeof TABS)[number];

/** The console tabs: each loaded (and connected) only when opened. */
const CONSOLES = [
  { key: "console", title: "Serial console", kind: "serial", Console: SerialConsole },
  { key: "vnc", title: "VNC", kind: "vnc", Console: VncConsole },
] as const;

const loadingConsole = <Skeleton height="24rem" screenreaderText="Loading the console" />;

function when(iso: string | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function Overview({ vm, live }: { vm: Vm; live: boolean }) {
  const ssh = sshCommand(vm);
  const now = useNow(5000);
  const { spec, status } = vm;
  const rows: { term: string; value: ReactNode }[] = [
    { term: "Operating system", value: `${spec.image.osName} (catalog entry ${spec.image.entryId})` },
    { term: "Size", value: `${spec.cpu} vCPU, ${spec.memory} memory, ${spec.storage} disk` },
    {
      term: "Firmware",
      value: `${spec.image.firmware}${spec.image.machineType ? `, machine ${spec.image.machineType}` : ""}`,
    },
    { term: "Cloud user", value: spec.image.cloudUser },
    { term: "SSH keys", value: spec.sshKeys.length > 0 ? `${spec.sshKeys.length}` : "none" },
    { term: "Password", value: spec.hasPassword ? "set" : "none" },
    { term: "Run strategy", value: spec.runStrategy },
    { term: "Provider", value: `${vm.provider}${status.runtime ? ` — ${status.runtime}` : ""}` },
    {
      term: "IP addresses",
      value: status.ipAddresses.length > 0 ? status.ipAddresses.join(", ") : "—",
    },
    { term: "Created", value: `${when(vm.createdAt)} (${age(vm.createdAt, now)} ago)` },
    { term: "Started", value: when(status.startedAt) },
    {
      term: "Ready",
      value:
        status.timeToReadyMs !== undefined && status.readyAt
          ? `${when(status.readyAt)} (${(status.timeToReadyMs / 1000).toFixed(1)} s after start)`
          : when(status.readyAt),
    },
  ];
  return (
    <div className="osimg-details">
      {ssh ? (
        <>
          <Title headingLevel="h2">Log in</Title>
          <ClipboardCopy isReadOnly hoverTip="Copy" clickTip="Copied" textAriaLabel="SSH command">
            {ssh}
          </ClipboardCopy>
        </>
      ) : null}
      <Title headingLevel="h2">Spec</Title>
      <DescriptionList isHorizontal isCompact aria-label={`Spec of ${vm.name}`}>
        {rows.map(({ term, value }) => (
          <DescriptionListGroup key={term}>
            <DescriptionListTerm>{term}</DescriptionListTerm>
            <DescriptionListDescription>{value}</DescriptionListDescription>
          </DescriptionListGroup>
        ))}
      </DescriptionList>
      <Title headingLevel="h2">Conditions</Title>
      {status.conditions.length === 0 ? (
        <p className="osimg-muted">No conditions reported yet.</p>
      ) : (
        <Table aria-label="Conditions" variant="compact" gridBreakPoint="grid-md">
          <Thead>
            <Tr>
              <Th>Type</Th>
              <Th>Status</Th>
              <Th>Reason</Th>
              <Th modifier="wrap">Message</Th>
              <Th>Since</Th>
            </Tr>
          </Thead>
          <Tbody>
            {status.conditions.map((c) => (
              <Tr key={c.type}>
                <Td dataLabel="Type">{c.type}</Td>
                <Td dataLabel="Status">{c.status}</Td>
                <Td dataLabel="Reason">{c.reason}</Td>
                <Td dataLabel="Message">{c.message ?? ""}</Td>
                <Td dataLabel="Since">{when(c.lastTransitionTime)}</Td>
              </Tr>
            ))}
          </Tbody>
        </Table>
      )}
      <Title headingLevel="h2">Events</Title>
      <VmEventsTable namespace={vm.namespace} name={vm.name} live={live} />
      <Title headingLevel="h2">Notes</Title>
      {status.notes.length === 0 ? (
        <p className="osimg-muted">No notes.</p>
      ) : (
        <ul className="osimg-notes" aria-label="Notes">
          {status.notes.map((note) => (
            <li key={note}>{note}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Manifest({ namespace, name }: { namespace: string; name: string }) {
  const query = useQuery(manifestQuery(namespace, name));
  if (query.isError)
    return (
      <ErrorState
        title="Cannot load what the provider runs"
        error={query.error}
        onRetry={() => query.refetch()}
      />
    );
  if (!query.data) return <Skeleton height="12rem" screenreaderText="Loading" />;
  return (
    <>
      <Content component="p" className="osimg-muted">
        {query.data.format === "yaml"
          ? "The Kubernetes objects of this VM."
          : "The QEMU command line of this VM (notes first, as comments)."}
      </Content>
      <CodeBlock aria-label="What the provider runs">
        <CodeBlockCode className="osimg-review-code">{renderedText(query.data)}</CodeBlockCode>
      </CodeBlock>
    </>
  );
}

function VmDetails({ vm, namespace, live }: { vm: Vm; namespace: string; live: boolean }) {
  const [params, setParams] = useSearchParams();
  const [, navigate] = useLocation();
  const [error, setError] = useState<string | undefined>();
  const actions = useVmActions(namespace, vm, setError, () => navigate(withNamespace(PATHS.vms, namespace)));
  const requested = params.get("tab") as TabKey | null;
  const tab: TabKey = requested && TABS.includes(requested) ? requested : "overview";
  const choose = (key: TabKey) =>
    setParams(
      (p) => {
        if (key === "overview") p.delete("tab");
        else p.set("tab", key);
        return p;
      },
      { replace: true },
    );
  const running = !["Stopped", "Failed", "Provisioning"].includes(vm.status.phase);
  const offline = (
    <EmptyState titleText="The VM is not running" headingLevel="h3" variant="sm">
      <EmptyStateBody>Start it to use its console.</EmptyStateBody>
    </EmptyState>
  );
  return (
    <>
      <PageSection>
        <div className="osimg-vm-head">
          <div>
            <Title headingLevel="h1">{vm.name}</Title>
            <VmStatus vm={vm} showDetail />
          </div>
          <VmActionButtons vm={vm} actions={actions} />
        </div>
        <ErrorAlert message={error} onClose={() => setError(undefined)} className="osimg-section" />
      </PageSection>
      <PageSection isFilled>
        <Tabs
          activeKey={tab}
          onSelect={(_event, key) => choose(key as TabKey)}
          aria-label={`Views of ${vm.name}`}
          mountOnEnter
          unmountOnExit
        >
          {[
            <Tab key="overview" eventKey="overview" title={<TabTitleText>Overview</TabTitleText>}>
              <div className="osimg-tab-body">
                <Overview vm={vm} live={live} />
              </div>
            </Tab>,
            ...CONSOLES.map(({ key, title, kind, Console }) => (
              <Tab key={key} eventKey={key} title={<TabTitleText>{title}</TabTitleText>}>
                <div className="osimg-tab-body">
                  {running ? (
                    <Suspense fallback={loadingConsole}>
                      <Console socket={consoleSocket(namespace, vm.name, kind)} name={vm.name} />
                    </Suspense>
                  ) : (
                    offline
                  )}
                </div>
              </Tab>
            )),
            <Tab key="manifest" eventKey="manifest" title={<TabTitleText>What runs</TabTitleText>}>
              <div className="osimg-tab-body">
                <Manifest namespace={namespace} name={vm.name} />
              </div>
            </Tab>,
          ]}
        </Tabs>
      </PageSection>
      {actions.dialog}
    </>
  );
}

export default function VmDetailsPage() {
  const { name = "" } = useParams<{ name: string }>();
  const namespace = useNamespace();
  const live = useVmEvents(namespace);
  const query = useQuery(vmQuery(namespace, name, live));
  const [, navigate] = useLocation();
  const back = withNamespace(PATHS.vms, namespace);
  const follow = (event: MouseEvent) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(back);
  };
  const gone = query.error instanceof HttpError && query.error.status === 404;
  return (
    <>
      <PageSection padding={{ default: "noPadding" }} className="osimg-breadcrumb">
        <Breadcrumb>
          <BreadcrumbItem to={back} onClick={follow}>
            VMs
          </BreadcrumbItem>
          <BreadcrumbItem isActive>{name}</BreadcrumbItem>
        </Breadcrumb>
      </PageSection>
      {query.data && !gone ? (
        <VmDetails vm={query.data} namespace={namespace} live={live} />
      ) : gone ? (
        <PageSection isFilled>
          <EmptyState titleText={`No VM ${name} in project ${namespace}`} headingLevel="h1">
            <EmptyStateBody>It may have been deleted.</EmptyStateBody>
            <EmptyStateFooter>
              <EmptyStateActions>
                <Button variant="primary" onClick={() => navigate(back)}>
                  Back to the VMs
                </Button>
              </EmptyStateActions>
            </EmptyStateFooter>
          </EmptyState>
        </PageSection>
      ) : query.isError ? (
        <PageSection isFilled>
          <ErrorState title={`Cannot load ${name}`} error={query.error} onRetry={() => query.refetch()} />
        </PageSection>
      ) : (
        <PageSection isFilled aria-busy="true">
          <Skeleton height="3rem" screenreaderText={`Loading ${name}`} />
          <Skeleton height="16rem" className="osimg-section" />
        </PageSection>
      )}
    </>
  );
}
