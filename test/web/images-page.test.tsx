// @vitest-environment happy-dom
// The images page against a fake server: the local store (source, format, sizes, checksum state), a pull
// of a catalog entry's image followed through its events to the end (the store is then listed again), a
// failed pull in the server's words, removal behind a confirmation.
import { cleanup, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { PullJob } from "../../src/images/schemas.ts";
import type { StoredImage } from "../../web/src/api/images.ts";
import ImagesPage from "../../web/src/pages/ImagesPage.tsx";
import { catalogResponse, EventFeed, fakeServer, renderAt } from "./support.tsx";

beforeEach(() => sessionStorage.clear());
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const CATALOG = `images:
  - OS_NAME: "Debian 13"
    CLOUD_USER: debian
    OS_IMAGE_URL: "https://images.example.test/debian-13.qcow2"
  - OS_NAME: "Alpine 3.22"
    CLOUD_USER: alpine
    OS_IMAGE_URL: "https://images.example.test/alpine.qcow2"
`;

const DEBIAN: StoredImage = {
  sha256: "1461d9bd96be0f8b2c7c6d3b5b0d6a1e8f4c2a9b7d5e3f1a0b9c8d7e6f5a4b3c",
  sha512: "00",
  sourceUrl: "https://images.example.test/debian-13.qcow2",
  format: "qcow2",
  virtualSize: 3 * 2 ** 30,
  size: 420 * 2 ** 20,
  fetchedAt: "2026-01-02T03:04:05Z",
  compression: "xz",
  download: { size: 300 * 2 ** 20, sha256: "aa", sha512: "bb" },
  checksum: { status: "verified", algorithm: "sha512", source: "https://images.example.test/SHA512SUMS" },
  catalogEntry: "debian-13",
};

function job(state: PullJob["state"], progress: PullJob["progress"], extra: Partial<PullJob> = {}): PullJob {
  return {
    id: "pull-1",
    source: "https://images.example.test/alpine.qcow2",
    entry: "alpine-3.22",
    state,
    progress,
    startedAt: "2026-01-02T03:04:05Z",
    ...extra,
  };
}

function serve(store: StoredImage[]) {
  const feed = new EventFeed();
  const state = { store };
  const server = fakeServer({
    "GET /api/v1/store": () => ({ body: state.store }),
    "GET /api/v1/catalog": () => ({ body: catalogResponse(CATALOG) }),
    "POST /api/v1/images/alpine-3.22/pull": () => ({
      status: 202,
      body: job("running", { phase: "probe", received: 0 }),
    }),
    "GET /api/v1/pulls/pull-1/events": () => ({ events: feed }),
  });
  return { ...server, feed, state };
}

const storeRows = async () =>
  within(await screen.findByRole("grid", { name: "Stored images" }))
    .getAllByRole("row")
    .slice(1);
const catalogRow = async (name: string) =>
  within(await screen.findByRole("grid", { name: "Catalog images" }))
    .getByText(name)
    .closest("tr") as HTMLElement;

describe("Images page", () => {
  it("lists the store: source, format, sizes and checksum state", async () => {
    serve([DEBIAN]);
    renderAt("/images", <ImagesPage />);
    const [row] = await storeRows();
    const cell = (label: string) => row?.querySelector(`[data-label="${label}"]`)?.textContent;
    expect(cell("Image")).toBe("debian-13.qcow2sha256:1461d9bd96be · catalog entry debian-13");
    expect(cell("Format")).toBe("qcow2was xz");
    expect(cell("Virtual size")).toBe("3 GiB");
    expect(cell("On disk")).toBe("420 MiB");
    expect(cell("Checksum")).toContain("verified");
    expect(cell("Checksum")).toContain("sha512 from https://images.example.test/SHA512SUMS");
    expect(screen.getByText("1 image in the local store, 420 MiB on disk")).toBeTruthy();
    // The catalog's images: Debian's is stored, Alpine's is not.
    expect((await catalogRow("Debian 13")).textContent).toContain("420 MiB, qcow2");
    expect((await catalogRow("Alpine 3.22")).textContent).toContain("no");
  });

  it("pulls a catalog image, shows its progress live, and lists the store again when done", async () => {
    const { feed, state, sent } = serve([DEBIAN]);
    renderAt("/images", <ImagesPage />);
    fireEvent.click(await screen.findByRole("button", { name: "Pull Alpine 3.22" }));
    await waitFor(() => expect(feed.open).toBe(1));
    feed.send("progress", job("running", { phase: "download", received: 2 ** 20, total: 4 * 2 ** 20 }));
    const bar = await screen.findByRole("progressbar", { name: /Downloading: 1 MiB of 4 MiB/ });
    expect(bar.getAttribute("aria-valuenow")).toBe("25");
    const alpine: StoredImage = {
      ...DEBIAN,
      sha256: "ab".repeat(32),
      sourceUrl: job("done", { phase: "done", received: 1 }).source,
      catalogEntry: "alpine-3.22",
      size: 4 * 2 ** 20,
    };
    state.store = [DEBIAN, alpine];
    feed.send("done", job("done", { phase: "done", received: 4 * 2 ** 20, total: 4 * 2 ** 20 }));
    await waitFor(async () => expect((await catalogRow("Alpine 3.22")).textContent).toContain("Pulled"));
    await waitFor(async () => expect(await storeRows()).toHaveLength(2));
    expect(sent.filter((r) => r.path === "/api/v1/store").length).toBeGreaterThanOrEqual(2);
    // Remembered for the tab: a reload finds the job.
    expect(JSON.parse(sessionStorage.getItem("osimg.pulls") ?? "[]")).toEqual(["pull-1"]);
  });

  it("shows a failed pull in the server's words", async () => {
    const { feed } = serve([]);
    renderAt("/images", <ImagesPage />);
    fireEvent.click(await screen.findByRole("button", { name: "Pull Alpine 3.22" }));
    await waitFor(() => expect(feed.open).toBe(1));
    feed.send(
      "failed",
      job(
        "failed",
        { phase: "download", received: 10 },
        {
          error: {
            code: "checksum_mismatch",
            message: "sha256 mismatch: the download is not the pinned image",
          },
        },
      ),
    );
    expect(
      await screen.findByText(/Failed: Sha256 mismatch: the download is not the pinned image\./),
    ).toBeTruthy();
  });

  it("removes a stored image only after a confirmation", async () => {
    const { state, sent } = serve([DEBIAN]);
    fakeServer({
      "GET /api/v1/store": () => ({ body: state.store }),
      "GET /api/v1/catalog": () => ({ body: catalogResponse(CATALOG) }),
      [`DELETE /api/v1/store/${DEBIAN.sha256}`]: () => {
        state.store = [];
        return { body: DEBIAN };
      },
    });
    renderAt("/images", <ImagesPage />);
    const [row] = await storeRows();
    fireEvent.click(within(row as HTMLElement).getByRole("button", { name: "Remove" }));
    const dialog = await screen.findByRole("dialog", { name: /Remove debian-13\.qcow2\?/ });
    expect(dialog.textContent).toContain("while such a VM exists, the image stays");
    expect(sent.some((r) => r.method === "DELETE")).toBe(false);
    fireEvent.click(within(dialog).getByRole("button", { name: "Remove" }));
    expect(await screen.findByRole("heading", { name: "The store is empty" })).toBeTruthy();
  });

  it("keeps an image a VM's disk is made on, with the server's reason", async () => {
    const { state } = serve([DEBIAN]);
    fakeServer({
      "GET /api/v1/store": () => ({ body: state.store }),
      "GET /api/v1/catalog": () => ({ body: catalogResponse(CATALOG) }),
      [`DELETE /api/v1/store/${DEBIAN.sha256}`]: () => ({
        status: 409,
        body: {
          error: "image_in_use",
          message: `image ${DEBIAN.sha256.slice(0, 12)} is the base of the disk of VM default/web-1`,
          hint: "delete those VMs first: their disks are overlays that read this image",
        },
      }),
    });
    renderAt("/images", <ImagesPage />);
    const [row] = await storeRows();
    fireEvent.click(within(row as HTMLElement).getByRole("button", { name: "Remove" }));
    const dialog = await screen.findByRole("dialog", { name: /Remove debian-13\.qcow2\?/ });
    fireEvent.click(within(dialog).getByRole("button", { name: "Remove" }));
    expect(await screen.findByText(/is the base of the disk of VM default\/web-1/)).toBeTruthy();
    expect(await storeRows()).toHaveLength(1);
  });
});
