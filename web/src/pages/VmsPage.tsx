// The project's VMs: status (with the image import's progress), phase, IPs, OS, size and age; actions in
// each row's menu, enabled exactly when the server would accept them; Create VM. Live: the server's VM
// events refetch the list (it is polled only while the event stream is down).
import {
  Content,
  EmptyState,
  EmptyStateActions,
  EmptyStateBody,
  EmptyStateFooter,
  Label,
  MenuToggle,
  PageSection,
  Skeleton,
  Title,
  Toolbar,
  ToolbarContent,
  ToolbarItem,
} from "@patternfly/react-core";
import EllipsisVIcon from "@patternfly/react-icons/dist/esm/icons/ellipsis-v-icon";
import { ActionsColumn, Table, Tbody, Td, Th, Thead, Tr } from "@patternfly/react-table";
import { useQuery } from "@tanstack/react-query";
import { type MouseEvent, useState } from "react";
import { useLocation } from "wouter";
import { useVmEvents, type Vm, vmsQuery } from "../api/vms.ts";
import { ErrorAlert } from "../components/ErrorAlert.tsx";
import { ErrorState } from "../components/ErrorState.tsx";
import { plural } from "../format.ts";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { vmPath } from "../routes.ts";
import { useNow } from "../time.ts";
import { ACTION_LABELS, canRun, useVmActions, VM_ACTIONS } from "../vms/actions.tsx";
import { CreateVmButton } from "../vms/CreateVmDialog.tsx";
import { age } from "../vms/status.ts";
import { VmStatus } from "../vms/VmStatus.tsx";

const COLUMNS = ["Name", "Status", "Phase", "Operating system", "IP addresses", "Size", "Age"] as const;

function VmRow({
  vm,
  namespace,
  now,
  onError,
}: {
  vm: Vm;
  namespace: string;
  now: number;
  onError: (message: string) => void;
}) {
  const [, navigate] = useLocation();
  const actions = useVmActions(namespace, vm, onError);
  const href = withNamespace(vmPath(vm.name), namespace);
  const open = (event: MouseEvent) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(href);
  };
  const busy = actions.pending !== undefined;
  return (
    <Tr>
      <Td dataLabel="Name">
        <a href={href} onClick={open}>
          {vm.name}
        </a>
      </Td>
      <Td dataLabel="Status">
        <VmStatus vm={vm} />
      </Td>
      <Td dataLabel="Phase">
        <Label isCompact>{vm.status.phase}</Label>
      </Td>
      <Td dataLabel="Operating system">{vm.spec.image.osName}</Td>
      <Td dataLabel="IP addresses">
        {vm.status.ipAddresses.length > 0 ? (
          vm.status.ipAddresses.join(", ")
        ) : (
          <span className="osimg-muted">—</span>
        )}
      </Td>
      <Td dataLabel="Size">
        {vm.spec.cpu} vCPU, {vm.spec.memory}, {vm.spec.storage}
      </Td>
      <Td dataLabel="Age">
        <time dateTime={vm.createdAt} title={new Date(vm.createdAt).toLocaleString()}>
          {age(vm.createdAt, now)}
        </time>
      </Td>
      <Td isActionCell>
        <ActionsColumn
          items={[
            ...VM_ACTIONS.map((action) => ({
              title: ACTION_LABELS[action],
              isDisabled: busy || !canRun(vm, action),
              onClick: () => void actions.run(action),
            })),
            { isSeparator: true },
            { title: "Delete", isDanger: true, isDisabled: busy, onClick: actions.askDelete },
          ]}
          actionsToggle={({ onToggle, isOpen, isDisabled, toggleRef }) => (
            <MenuToggle
              ref={toggleRef}
              onClick={onToggle}
              isExpanded={isOpen}
              isDisabled={isDisabled}
              variant="plain"
              aria-label={`Actions for ${vm.name}`}
              icon={<EllipsisVIcon />}
            />
          )}
        />
        {actions.dialog}
      </Td>
    </Tr>
  );
}

function VmTable({ vms, namespace }: { vms: Vm[]; namespace: string }) {
  const now = useNow(1000);
  const [error, setError] = useState<string | undefined>();
  return (
    <>
      <ErrorAlert message={error} onClose={() => setError(undefined)} />
      <Table aria-label="VMs" variant="compact" gridBreakPoint="grid-lg">
        <Thead>
          <Tr>
            {COLUMNS.map((c) => (
              <Th key={c} modifier="wrap">
                {c}
              </Th>
            ))}
            <Th screenReaderText="Actions" />
          </Tr>
        </Thead>
        <Tbody>
          {vms.map((vm) => (
            <VmRow key={vm.name} vm={vm} namespace={namespace} now={now} onError={setError} />
          ))}
        </Tbody>
      </Table>
    </>
  );
}

export default function VmsPage() {
  const namespace = useNamespace();
  const live = useVmEvents(namespace);
  const query = useQuery(vmsQuery(namespace, live));
  const vms = query.data;
  return (
    <>
      <PageSection>
        <Toolbar>
          <ToolbarContent>
            <ToolbarItem>
              <Title headingLevel="h1">Virtual machines</Title>
            </ToolbarItem>
            <ToolbarItem align={{ default: "alignEnd" }}>
              <CreateVmButton onCreated={() => {}} />
            </ToolbarItem>
          </ToolbarContent>
        </Toolbar>
        <Content component="p">
          {vms ? `${plural(vms.length, "VM")} in project ${namespace}` : `Project ${namespace}`}
          <span className="osimg-muted">
            {" · "}
            {live ? "updated live" : "updating every few seconds"}
          </span>
        </Content>
      </PageSection>
      <PageSection isFilled>
        {vms ? (
          vms.length === 0 ? (
            <EmptyState titleText={`No VMs in project ${namespace}`} headingLevel="h2">
              <EmptyStateBody>Create one from an operating system of the catalog.</EmptyStateBody>
              <EmptyStateFooter>
                <EmptyStateActions>
                  <CreateVmButton onCreated={() => {}} />
                </EmptyStateActions>
              </EmptyStateFooter>
            </EmptyState>
          ) : (
            <VmTable vms={vms} namespace={namespace} />
          )
        ) : query.isError ? (
          <ErrorState title="Cannot list the VMs" error={query.error} onRetry={() => query.refetch()} />
        ) : (
          <div aria-busy="true">
            <Skeleton height="2rem" screenreaderText="Loading the VMs" />
            <Skeleton height="8rem" className="osimg-section" />
          </div>
        )}
      </PageSection>
    </>
  );
}
