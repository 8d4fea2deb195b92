// The local image store: each image's source, format, sizes and checksum state; and the catalog's images
// with a Pull button each, whose progress (download, verify, store) is followed live until it is done.
import {
  Button,
  Content,
  EmptyState,
  EmptyStateBody,
  Label,
  Modal,
  ModalBody,
  ModalFooter,
  ModalHeader,
  PageSection,
  Progress,
  ProgressMeasureLocation,
  ProgressSize,
  Skeleton,
  Title,
  Tooltip,
} from "@patternfly/react-core";
import { Table, Tbody, Td, Th, Thead, Tr } from "@patternfly/react-table";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { formatBytes } from "../../../src/units/quantity.ts";
import { useCatalog } from "../api/catalog.ts";
import {
  followPull,
  getPull,
  type PullJob,
  rememberedPulls,
  rememberPulls,
  removeStored,
  type StoredImage,
  startPull,
  storeQuery,
} from "../api/images.ts";
import { written } from "../catalog/view.ts";
import { ErrorAlert, errorText } from "../components/ErrorAlert.tsx";
import { ErrorState } from "../components/ErrorState.tsx";
import { CheckIcon } from "../components/icons.tsx";
import { plural, sentence } from "../format.ts";
import { pullProgress } from "../images/pulls.ts";

function fileName(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.split("/").pop() || url);
  } catch {
    return url;
  }
}

const CHECKSUM_WORDS: Record<StoredImage["checksum"]["status"], string> = {
  verified: "verified",
  mismatch: "mismatch",
  unverified: "not verified",
};

function Checksum({ image }: { image: StoredImage }) {
  const { checksum } = image;
  const status =
    checksum.status === "verified" ? "pass" : checksum.status === "mismatch" ? "fail" : "unknown";
  const detail =
    checksum.status === "verified"
      ? `${checksum.algorithm ?? "sha256"} from ${checksum.source ?? "the catalog"}`
      : (checksum.reason ?? "");
  return (
    <>
      <span className="osimg-status">
        <CheckIcon status={status} label="Checksum" decorative /> {CHECKSUM_WORDS[checksum.status]}
      </span>
      {detail ? <span className="osimg-hint">{detail}</span> : null}
    </>
  );
}

function StoreTable({ images, onRemove }: { images: StoredImage[]; onRemove: (image: StoredImage) => void }) {
  if (images.length === 0)
    return (
      <EmptyState titleText="The store is empty" headingLevel="h3" variant="sm">
        <EmptyStateBody>
          Images are pulled when a VM needs them, or ahead of time with Pull below.
        </EmptyStateBody>
      </EmptyState>
    );
  return (
    <Table aria-label="Stored images" variant="compact" gridBreakPoint="grid-lg">
      <Thead>
        <Tr>
          <Th width={20}>Image</Th>
          <Th modifier="nowrap">Format</Th>
          <Th modifier="nowrap">Virtual size</Th>
          <Th modifier="nowrap">On disk</Th>
          <Th width={30}>Checksum</Th>
          <Th>Fetched</Th>
          <Th screenReaderText="Actions" />
        </Tr>
      </Thead>
      <Tbody>
        {images.map((image) => (
          <Tr key={image.sha256}>
            <Td dataLabel="Image">
              <Tooltip content={image.sourceUrl}>
                <span className="osimg-nowrap">{fileName(image.sourceUrl)}</span>
              </Tooltip>
              <span className="osimg-hint">
                <code title={image.sha256}>sha256:{image.sha256.slice(0, 12)}</code>
                {image.catalogEntry ? ` · catalog entry ${image.catalogEntry}` : ""}
              </span>
            </Td>
            <Td dataLabel="Format">
              {image.format}
              {image.compression ? <span className="osimg-hint">was {image.compression}</span> : null}
            </Td>
            <Td dataLabel="Virtual size" modifier="nowrap">
              {formatBytes(image.virtualSize)}
            </Td>
            <Td dataLabel="On disk" modifier="nowrap">
              {formatBytes(image.size)}
            </Td>
            <Td dataLabel="Checksum">
              <Checksum image={image} />
            </Td>
            <Td dataLabel="Fetched">
              <time dateTime={image.fetchedAt}>{new Date(image.fetchedAt).toLocaleString()}</time>
            </Td>
            <Td isActionCell>
              <Button variant="secondary" size="sm" isDanger onClick={() => onRemove(image)}>
                Remove
              </Button>
            </Td>
          </Tr>
        ))}
      </Tbody>
    </Table>
  );
}

function PullState({ job }: { job: PullJob }) {
  const view = pullProgress(job);
  if (job.state === "failed")
    return (
      <span className="osimg-status" role="status">
        <CheckIcon status="fail" label="Pull" decorative /> Failed:{" "}
        {sentence(job.error?.message ?? "unknown error")}
      </span>
    );
  if (job.state === "done")
    return (
      <span className="osimg-status" role="status">
        <CheckIcon status="pass" label="Pull" decorative /> Pulled
      </span>
    );
  return (
    <Progress
      value={view.percent ?? 0}
      title={view.label}
      size={ProgressSize.sm}
      measureLocation={
        view.percent === undefined ? ProgressMeasureLocation.none : ProgressMeasureLocation.outside
      }
      label={view.percent === undefined ? undefined : `${Math.round(view.percent)}%`}
      className="osimg-pull-progress"
    />
  );
}

/** Pull jobs by catalog entry, followed live; remembered for the browser tab. */
function usePulls(onFinished: () => void) {
  const [jobs, setJobs] = useState<Record<string, PullJob>>({});
  const stops = useRef(new Map<string, () => void>());
  const finished = useRef(onFinished);
  finished.current = onFinished;

  const track = (job: PullJob) => {
    const key = job.entry ?? job.source;
    setJobs((all) => ({ ...all, [key]: job }));
    if (job.state !== "running" || stops.current.has(job.id)) return;
    stops.current.set(
      job.id,
      followPull(job.id, (update) => {
        setJobs((all) => ({ ...all, [key]: update }));
        if (update.state !== "running") {
          stops.current.delete(job.id);
          finished.current();
        }
      }),
    );
  };

  // biome-ignore lint/correctness/useExhaustiveDependencies: once, on mount
  useEffect(() => {
    const all = stops.current;
    for (const id of rememberedPulls()) getPull(id).then(track, () => {});
    return () => {
      for (const stop of all.values()) stop();
      all.clear();
    };
  }, []);

  const start = async (entryId: string) => {
    const job = await startPull(entryId);
    rememberPulls([...rememberedPulls().filter((id) => id !== job.id), job.id]);
    track(job);
  };
  return { jobs, start };
}

function CatalogImages({ store, onFinished }: { store: StoredImage[]; onFinished: () => void }) {
  const catalog = useCatalog();
  const { jobs, start } = usePulls(onFinished);
  const [error, setError] = useState<string | undefined>();
  const [starting, setStarting] = useState<string | undefined>();
  if (catalog.isError)
    return (
      <ErrorState title="Cannot load the catalog" error={catalog.error} onRetry={() => catalog.refetch()} />
    );
  if (!catalog.data) return <Skeleton height="8rem" screenreaderText="Loading the catalog" />;
  const entries = catalog.data.entries.filter((e) => e.spec.imageUrl);
  const pull = async (entryId: string) => {
    setError(undefined);
    setStarting(entryId);
    try {
      await start(entryId);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setStarting(undefined);
    }
  };
  return (
    <>
      <ErrorAlert message={error} onClose={() => setError(undefined)} />
      <Table aria-label="Catalog images" variant="compact" gridBreakPoint="grid-md">
        <Thead>
          <Tr>
            <Th>OS image</Th>
            <Th>Source</Th>
            <Th>In the store</Th>
            <Th>Pull</Th>
          </Tr>
        </Thead>
        <Tbody>
          {entries.map((entry) => {
            const url = entry.spec.imageUrl as string;
            const stored = store.find((i) => i.catalogEntry === entry.id || i.sourceUrl === url);
            const job = jobs[entry.id];
            const name = written(entry, "OS_NAME") || entry.id;
            return (
              <Tr key={entry.id}>
                <Td dataLabel="OS image">{name}</Td>
                <Td dataLabel="Source">
                  <span className="osimg-value">{url}</span>
                </Td>
                <Td dataLabel="In the store">
                  {stored ? (
                    <Label color="green" isCompact>
                      {formatBytes(stored.size)}, {stored.format}
                    </Label>
                  ) : (
                    <span className="osimg-muted">no</span>
                  )}
                </Td>
                <Td dataLabel="Pull">
                  {job && job.state === "running" ? (
                    <PullState job={job} />
                  ) : (
                    <div className="osimg-pull">
                      <Button
                        variant="secondary"
                        size="sm"
                        onClick={() => pull(entry.id)}
                        isLoading={starting === entry.id}
                        isDisabled={starting === entry.id}
                        aria-label={`${stored ? "Pull again" : "Pull"} ${name}`}
                      >
                        {stored ? "Pull again" : "Pull"}
                      </Button>
                      {job ? <PullState job={job} /> : null}
                    </div>
                  )}
                </Td>
              </Tr>
            );
          })}
        </Tbody>
      </Table>
    </>
  );
}

export default function ImagesPage() {
  const client = useQueryClient();
  const store = useQuery(storeQuery);
  const [removing, setRemoving] = useState<StoredImage | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const refresh = () => void client.invalidateQueries({ queryKey: storeQuery.queryKey });
  const remove = async (image: StoredImage) => {
    setBusy(true);
    try {
      await removeStored(image.sha256);
      setRemoving(undefined);
      refresh();
    } catch (e) {
      setError(`Cannot remove ${fileName(image.sourceUrl)}: ${errorText(e)}`);
      setRemoving(undefined);
    } finally {
      setBusy(false);
    }
  };
  const total = store.data?.reduce((n, i) => n + i.size, 0) ?? 0;
  return (
    <>
      <PageSection>
        <Title headingLevel="h1">Images</Title>
        <Content component="p">
          {store.data
            ? `${plural(store.data.length, "image")} in the local store, ${formatBytes(total)} on disk`
            : "The local image store"}
        </Content>
      </PageSection>
      <PageSection>
        <Title headingLevel="h2" className="osimg-heading">
          Local store
        </Title>
        <ErrorAlert message={error} onClose={() => setError(undefined)} />
        {store.data ? (
          <StoreTable images={store.data} onRemove={setRemoving} />
        ) : store.isError ? (
          <ErrorState title="Cannot list the store" error={store.error} onRetry={() => store.refetch()} />
        ) : (
          <Skeleton height="8rem" screenreaderText="Loading the store" />
        )}
      </PageSection>
      <PageSection isFilled>
        <Title headingLevel="h2" className="osimg-heading">
          Pull from the catalog
        </Title>
        <Content component="p" className="osimg-muted">
          A pull downloads the image, checks its format and checksum, and stores it by its digest.
        </Content>
        <CatalogImages store={store.data ?? []} onFinished={refresh} />
      </PageSection>
      {removing ? (
        <Modal
          isOpen
          variant="small"
          onClose={() => setRemoving(undefined)}
          aria-labelledby="remove-image-title"
        >
          <ModalHeader
            title={`Remove ${fileName(removing.sourceUrl)}?`}
            labelId="remove-image-title"
            titleIconVariant="warning"
          />
          <ModalBody>
            The image ({formatBytes(removing.size)}) leaves the store; a new VM pulls it again. Local VMs'
            disks are overlays on the image they were created from: while such a VM exists, the image stays.
          </ModalBody>
          <ModalFooter>
            <Button variant="danger" onClick={() => remove(removing)} isLoading={busy} isDisabled={busy}>
              Remove
            </Button>
            <Button variant="link" onClick={() => setRemoving(undefined)} isDisabled={busy}>
              Cancel
            </Button>
          </ModalFooter>
        </Modal>
      ) : null}
    </>
  );
}
