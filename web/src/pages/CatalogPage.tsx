// The catalog: its OS images with validity and image checks, a filter and sorting, details in a drawer,
// the findings, and a plain alert while the latest edit is rejected. Polled: a change to the catalog
// file shows within a second or two.
import {
  Button,
  Content,
  Drawer,
  DrawerContent,
  DrawerContentBody,
  EmptyState,
  EmptyStateActions,
  EmptyStateBody,
  EmptyStateFooter,
  PageSection,
  SearchInput,
  Skeleton,
  Title,
  Toolbar,
  ToolbarContent,
  ToolbarItem,
} from "@patternfly/react-core";
import { useMemo, useState } from "react";
import { useLocation, useSearchParams } from "wouter";
import { type CatalogResponse, useCatalog } from "../api/catalog.ts";
import { filterEntries, sortEntries } from "../catalog/view.ts";
import { type CatalogSort, CatalogTable } from "../components/CatalogTable.tsx";
import { EntryDetails } from "../components/EntryDetails.tsx";
import { ErrorState } from "../components/ErrorState.tsx";
import { FindingsPanel } from "../components/FindingsPanel.tsx";
import { ReloadAlert } from "../components/ReloadAlert.tsx";
import { plural } from "../format.ts";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { PATHS } from "../routes.ts";

function Summary({ catalog }: { catalog: CatalogResponse }) {
  const { counts } = catalog;
  const parts = [
    plural(counts.entries, "OS image"),
    catalog.source.location ? `from ${catalog.source.location}` : "",
    catalog.version ? `version ${catalog.version.slice(0, 12)}` : "",
    counts.warning > 0 ? plural(counts.warning, "warning") : "",
  ].filter(Boolean);
  return <Content component="p">{parts.join(" · ")}</Content>;
}

function EditButton() {
  const [, navigate] = useLocation();
  const namespace = useNamespace();
  return (
    <Button variant="secondary" onClick={() => navigate(withNamespace(PATHS.catalogEdit, namespace))}>
      Edit YAML
    </Button>
  );
}

function CatalogBody({ catalog }: { catalog: CatalogResponse }) {
  const [params, setParams] = useSearchParams();
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<CatalogSort>({ key: "name", direction: "asc" });
  const shown = useMemo(
    () => sortEntries(filterEntries(catalog.entries, filter), sort.key, sort.direction),
    [catalog.entries, filter, sort],
  );
  const selected = catalog.entries.find((e) => e.id === params.get("entry"));
  const select = (id: string | undefined) =>
    setParams((p) => {
      if (id === undefined) p.delete("entry");
      else p.set("entry", id);
      return p;
    });

  if (catalog.entries.length === 0)
    return (
      <EmptyState titleText="No OS images in the catalog" headingLevel="h2">
        <EmptyStateBody>
          {catalog.lastReload?.ok === false
            ? "The catalog has errors (see above), so none of its entries are offered."
            : `${catalog.source.location || "The catalog"} lists no images. Add entries to offer them.`}
        </EmptyStateBody>
        <EmptyStateFooter>
          <EmptyStateActions>
            <EditButton />
          </EmptyStateActions>
        </EmptyStateFooter>
      </EmptyState>
    );

  return (
    <Drawer isExpanded={selected !== undefined}>
      <DrawerContent
        panelContent={
          selected ? (
            <EntryDetails
              entry={selected}
              verification={catalog.verification}
              location={catalog.source.location}
              onClose={() => select(undefined)}
            />
          ) : undefined
        }
      >
        <DrawerContentBody>
          <Toolbar>
            <ToolbarContent>
              <ToolbarItem>
                <SearchInput
                  aria-label="Filter OS images"
                  placeholder="Filter by name, user, URL…"
                  value={filter}
                  onChange={(_event, value) => setFilter(value)}
                  onClear={() => setFilter("")}
                  resultsCount={filter ? `${shown.length} of ${catalog.entries.length}` : undefined}
                />
              </ToolbarItem>
            </ToolbarContent>
          </Toolbar>
          {shown.length === 0 ? (
            <EmptyState titleText="No OS images match the filter" headingLevel="h2" variant="sm">
              <EmptyStateFooter>
                <EmptyStateActions>
                  <Button variant="link" onClick={() => setFilter("")}>
                    Clear the filter
                  </Button>
                </EmptyStateActions>
              </EmptyStateFooter>
            </EmptyState>
          ) : (
            <CatalogTable
              entries={shown}
              verification={catalog.verification}
              sort={sort}
              onSort={setSort}
              selectedId={selected?.id}
              onSelect={select}
            />
          )}
          <section className="osimg-section" aria-labelledby="catalog-findings">
            <Title headingLevel="h2" id="catalog-findings">
              Findings
            </Title>
            <FindingsPanel
              findings={catalog.findings}
              label="Findings of the served catalog"
              location={catalog.source.location}
              emptyText="No findings: every entry passes every check"
            />
          </section>
        </DrawerContentBody>
      </DrawerContent>
    </Drawer>
  );
}

export function CatalogPage() {
  const query = useCatalog();
  return (
    <>
      <PageSection>
        <Toolbar>
          <ToolbarContent>
            <ToolbarItem>
              <Title headingLevel="h1">Catalog</Title>
            </ToolbarItem>
            <ToolbarItem align={{ default: "alignEnd" }}>
              <EditButton />
            </ToolbarItem>
          </ToolbarContent>
        </Toolbar>
        {query.data ? <Summary catalog={query.data} /> : null}
      </PageSection>
      {query.data ? (
        <>
          {query.data.lastReload?.ok === false ? (
            <PageSection>
              <ReloadAlert catalog={query.data} />
            </PageSection>
          ) : null}
          <PageSection isFilled>
            <CatalogBody catalog={query.data} />
          </PageSection>
        </>
      ) : query.isError ? (
        <PageSection isFilled>
          <ErrorState title="Cannot load the catalog" error={query.error} onRetry={() => query.refetch()} />
        </PageSection>
      ) : (
        <PageSection isFilled aria-busy="true">
          <Skeleton height="2rem" screenreaderText="Loading the catalog" />
          <Skeleton height="12rem" className="osimg-section" />
        </PageSection>
      )}
    </>
  );
}
