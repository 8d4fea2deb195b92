// The masthead's session item: who is signed in (with their roles) and Sign out; and the current
// project's quota (limits and usage), so that a refused create never comes as a surprise.
import { Button, Flex, FlexItem, Label, Popover } from "@patternfly/react-core";
import { useQuery } from "@tanstack/react-query";
import { formatBytes } from "../../../src/units/quantity.ts";
import { useNamespace } from "../namespace.tsx";
import { useSession } from "./AuthGate.tsx";
import { describeRoles, type ProjectQuota, quotaQuery } from "./api.ts";

/** "1 / 2 VMs", "3 / 4 vCPU", "2 GiB / 8 GiB memory"; limits absent from the quota are not shown. */
export function quotaLines(quota: ProjectQuota): string[] {
  const { limits, usage } = quota;
  if (!limits) return [];
  const lines: string[] = [];
  if (limits.vms !== undefined) lines.push(`${usage.vms} / ${limits.vms} VMs`);
  if (limits.cpu !== undefined) lines.push(`${usage.cpu} / ${limits.cpu} vCPU`);
  if (limits.memoryBytes !== undefined)
    lines.push(`${formatBytes(usage.memoryBytes)} / ${limits.memory} memory`);
  if (limits.storageBytes !== undefined)
    lines.push(`${formatBytes(usage.storageBytes)} / ${limits.storage} storage`);
  return lines;
}

export function QuotaSummary() {
  const namespace = useNamespace();
  const session = useSession();
  const query = useQuery({ ...quotaQuery(namespace), enabled: session !== undefined, retry: false });
  const quota = query.data;
  if (!quota?.limits) return null;
  const lines = quotaLines(quota);
  return (
    <Popover
      headerContent={`Quota of ${namespace}`}
      bodyContent={
        <ul aria-label={`Quota of ${namespace}`}>
          {lines.map((l) => (
            <li key={l}>{l}</li>
          ))}
        </ul>
      }
    >
      <Button variant="plain" aria-label={`Quota of ${namespace}: ${lines.join(", ")}`}>
        <Label color="blue">{lines[0] ?? "quota"}</Label>
      </Button>
    </Popover>
  );
}

export function SessionMenu() {
  const session = useSession();
  if (!session) return null;
  const { me } = session;
  return (
    <Flex
      spaceItems={{ default: "spaceItemsSm" }}
      alignItems={{ default: "alignItemsCenter" }}
      flexWrap={{ default: "nowrap" }}
    >
      <FlexItem>
        <QuotaSummary />
      </FlexItem>
      {me ? (
        <>
          <FlexItem>
            <span className="osimg-session" title={describeRoles(me)}>
              {me.name}
            </span>
          </FlexItem>
          <FlexItem>
            <Button variant="secondary" size="sm" onClick={session.signOut}>
              Sign out
            </Button>
          </FlexItem>
        </>
      ) : null}
    </Flex>
  );
}
