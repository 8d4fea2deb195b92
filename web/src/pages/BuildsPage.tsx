// Image builds, newest first: kind, state, where it runs, when, how long, and its log's length; each opens
// its details with the live log. Polled (every 2 s while a build is queued or running). Admins submit new
// builds from here (NewBuildButton).
import {
  Content,
  EmptyState,
  EmptyStateBody,
  PageSection,
  Skeleton,
  Title,
  Toolbar,
  ToolbarContent,
  ToolbarItem,
} from "@patternfly/react-core";
import { Table, Tbody, Td, Th, Thead, Tr } from "@patternfly/react-table";
import { useQuery } from "@tanstack/react-query";
import type { MouseEvent } from "react";
import { useLocation } from "wouter";
import { buildsQuery } from "../api/builds.ts";
import { BuildStatus, buildDuration } from "../builds/BuildStatus.tsx";
import { NewBuildButton } from "../builds/NewBuildDialog.tsx";
import { ErrorState } from "../components/ErrorState.tsx";
import { plural } from "../format.ts";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { buildPath } from "../routes.ts";
import { useNow } from "../time.ts";

export default function BuildsPage() {
  const query = useQuery(buildsQuery);
  const now = useNow(1000);
  const namespace = useNamespace();
  const [, navigate] = useLocation();
  const builds = query.data;
  const follow = (href: string) => (event: MouseEvent) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <>
      <PageSection>
        <Toolbar>
          <ToolbarContent>
            <ToolbarItem>
              <Title headingLevel="h1">Builds</Title>
            </ToolbarItem>
            <ToolbarItem align={{ default: "alignEnd" }}>
              <NewBuildButton />
            </ToolbarItem>
          </ToolbarContent>
        </Toolbar>
        <Content component="p">
          {builds ? plural(builds.length, "build") : "Image builds"} — submitted with{" "}
          <code>POST /api/v1/builds</code> (a TOML spec; see docs/builder.md)
        </Content>
      </PageSection>
      <PageSection isFilled>
        {builds ? (
          builds.length === 0 ? (
            <EmptyState titleText="No builds yet" headingLevel="h2">
              <EmptyStateBody>
                Builds submitted to this server are listed here with their live logs.
              </EmptyStateBody>
            </EmptyState>
          ) : (
            <Table aria-label="Builds" variant="compact" gridBreakPoint="grid-md">
              <Thead>
                <Tr>
                  <Th>Build</Th>
                  <Th>Kind</Th>
                  <Th>State</Th>
                  <Th>Runs on</Th>
                  <Th>Submitted</Th>
                  <Th>Duration</Th>
                  <Th>Log</Th>
                </Tr>
              </Thead>
              <Tbody>
                {builds.map((build) => {
                  const href = withNamespace(buildPath(build.id), namespace);
                  return (
                    <Tr key={build.id}>
                      <Td dataLabel="Build">
                        <a href={href} onClick={follow(href)}>
                          <code>{build.id}</code>
                        </a>
                      </Td>
                      <Td dataLabel="Kind">{build.kind}</Td>
                      <Td dataLabel="State">
                        <BuildStatus build={build} />
                      </Td>
                      <Td dataLabel="Runs on">
                        {build.runner === "cluster" ? "Kubernetes Job" : "this server"}
                      </Td>
                      <Td dataLabel="Submitted">{new Date(build.createdAt).toLocaleString()}</Td>
                      <Td dataLabel="Duration">{buildDuration(build, now)}</Td>
                      <Td dataLabel="Log">{plural(build.logLines, "line")}</Td>
                    </Tr>
                  );
                })}
              </Tbody>
            </Table>
          )
        ) : query.isError ? (
          <ErrorState title="Cannot list the builds" error={query.error} onRetry={() => query.refetch()} />
        ) : (
          <Skeleton height="8rem" screenreaderText="Loading the builds" />
        )}
      </PageSection>
    </>
  );
}
