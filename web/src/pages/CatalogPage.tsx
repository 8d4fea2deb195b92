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
  Pagination,
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
import { filterEntries, sortEntries, written } from "../catalog/view.ts";
import { type CatalogSort, CatalogTable } from "../components/CatalogTable.tsx";
import { EntryDetails } from "../components/EntryDetails.tsx";
import { ErrorState } from "../components/ErrorState.tsx";
import { FindingsSection } from "../components/FindingsPanel.tsx";
import { ReloadAlert } from "../components/ReloadAlert.tsx";
import { plural } from "../format.ts";
import { useNamespace, withNamespace } from "../namespace.tsx";
import { PATHS } from "../routes.ts";
import { CreateVmButton } from "../vms/CreateVmDialog.tsx";

// A page of rows renders fast even for a large catalog; the filter finds the rest.
const PER_PAGE = 50;
const PER_PAGE_OPTIONS = [20, 50, 100, 200].map((n) => ({ title: String(n), value: n }));

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
  const [page, setPage] = useState(1);
  const [perPage, setPerPage] = useState(PER_PAGE);
  const shown = useMemo(
    () => sortEntries(filterEntries(catalog.entries, filter), sort.key, sort.direction),
    [catalog.entries, filter, sort],
  );
  // A page past the end (the filter or an edit removed entries) shows the last one.
  const pages = Math.max(1, Math.ceil(shown.length / perPage));
  const current = Math.min(page, pages);
  const onPage = shown.slice((current - 1) * perPage, current * perPage);
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
              actions={selected.valid ? <CreateVmButton image={written(selected, "OS_NAME")} /> : undefined}
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
                  onChange={(_event, value) => {
                    setFilter(value);
                    setPage(1);
                  }}
                  onClear={() => setFilter("")}
                  resultsCount={filter ? `${shown.length} of ${catalog.entries.length}` : undefined}
                />
              </ToolbarItem>
              <ToolbarItem variant="pagination" align={{ default: "alignEnd" }}>
                <Pagination
                  itemCount={shown.length}
                  page={current}
                  perPage={perPage}
                  perPageOptions={PER_PAGE_OPTIONS}
                  onSetPage={(_event, value) => setPage(value)}
                  onPerPageSelect={(_event, value, first) => {
                    setPerPage(value);
                    setPage(first);
                  }}
                  isCompact
                  titles={{ paginationAriaLabel: "Pages of OS images" }}
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
              entries={onPage}
              verification={catalog.verification}
              sort={sort}
              onSort={(next) => {
                setSort(next);
                setPage(1);
              }}
              selectedId={selected?.id}
              onSelect={select}
            />
          )}
          <FindingsSection
            id="catalog-findings"
            className="osimg-section"
            findings={catalog.findings}
            label="Findings of the served catalog"
            location={catalog.source.location}
            emptyText="No findings: every entry passes every check"
          />
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
