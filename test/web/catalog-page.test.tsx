// @vitest-environment happy-dom
// The catalog page against a fake server: the table (values as written, status, checks), sorting by
// parsed value, the filter, the details drawer, the last-good alert, and the empty and error states.
import { cleanup, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CatalogPage } from "../../web/src/pages/CatalogPage.tsx";
import { catalogResponse, fakeServer, renderAt } from "./support.tsx";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const CATALOG = `images:
  - OS_NAME: "Ubuntu 24.04"
    CLOUD_USER: ubuntu
    OS_IMAGE_URL: "https://images.example.test/noble.img"
    MIN_MEMORY: "2Gi"
    MIN_VCPU: "2"
    MIN_STORAGE: "20G"
    FIRMWARE_TYPE: "efi"
    MACHINE_TYPE: "q35"
    FEATURES: "acpi,smm"
    CLOUD_INIT: |
      #cloud-config
      packages:
        - qemu-guest-agent
  - OS_NAME: "Alpine 3.22"
    CLOUD_USER: alpine
    OS_IMAGE_URL: "https://images.example.test/alpine.qcow2"
    MIN_MEMORY: "1G"
    MIN_VCPU: "1"
    MIN_STORAGE: "2G"
  - OS_NAME: "Debian 13"
    CLOUD_USER: debian
    OS_IMAGE_URL: "https://images.example.test/trixie.qcow2"
    MIN_MEMORY: "512Mi"
    OS_COLOR: "blue"
`;

function serve(body: unknown, status = 200) {
  return fakeServer({ "GET /api/v1/catalog": () => ({ status, body }) });
}

const table = () => screen.findByRole("grid", { name: "OS images" });
const names = async () =>
  within(await table())
    .getAllByRole("row")
    .slice(1)
    .map((row) => within(row).getAllByRole("button")[0]?.textContent);
const rowOf = async (name: string) => {
  const row = within(await table())
    .getAllByRole("row")
    .find((r) => within(r).queryByRole("button", { name }));
  if (!row) throw new Error(`no row for ${name}`);
  return row;
};
const cell = (row: HTMLElement, label: string) =>
  row.querySelector(`[data-label="${label}"]`)?.textContent?.trim();

describe("catalog page", () => {
  it("shows every entry with its values as written, its validity and 'not checked'", async () => {
    serve(catalogResponse(CATALOG));
    renderAt("/catalog", <CatalogPage />);
    expect(await names()).toEqual(["Alpine 3.22", "Debian 13", "Ubuntu 24.04"]);
    const ubuntu = await rowOf("Ubuntu 24.04");
    expect(cell(ubuntu, "Min memory")).toBe("2Gi");
    expect(cell(ubuntu, "Min storage")).toBe("20G");
    expect(cell(ubuntu, "Firmware")).toBe("efi");
    expect(cell(ubuntu, "Features")).toContain("acpi");
    expect(cell(ubuntu, "Features")).toContain("smm");
    expect(cell(ubuntu, "Status")).toBe("valid");
    expect(cell(ubuntu, "Verification")).toBe("not checked");
    const debian = await rowOf("Debian 13");
    expect(cell(debian, "Min vCPU")).toBe("—");
    expect(cell(debian, "Status")).toBe("1 warning");
    expect(
      screen.getByText(/3 OS images · from \/etc\/osimg\/images.yaml · version 0123456789ab/),
    ).toBeTruthy();
  });

  it("sorts sizes by their value, not their text, both ways", async () => {
    serve(catalogResponse(CATALOG));
    renderAt("/catalog", <CatalogPage />);
    await table();
    fireEvent.click(screen.getByRole("button", { name: /Min memory/ }));
    // As text Alpine "1G" < Ubuntu "2Gi" < Debian "512Mi"; as bytes 512Mi < 1G < 2Gi.
    expect(await names()).toEqual(["Debian 13", "Alpine 3.22", "Ubuntu 24.04"]);
    fireEvent.click(screen.getByRole("button", { name: /Min memory/ }));
    expect(await names()).toEqual(["Ubuntu 24.04", "Alpine 3.22", "Debian 13"]);
    // Entries without a value stay last either way.
    fireEvent.click(screen.getByRole("button", { name: /Min vCPU/ }));
    expect(await names()).toEqual(["Alpine 3.22", "Ubuntu 24.04", "Debian 13"]);
    fireEvent.click(screen.getByRole("button", { name: /Min vCPU/ }));
    expect(await names()).toEqual(["Ubuntu 24.04", "Alpine 3.22", "Debian 13"]);
  });

  it("filters by any written value, and says when nothing matches", async () => {
    serve(catalogResponse(CATALOG));
    renderAt("/catalog", <CatalogPage />);
    await table();
    const filter = screen.getByRole("textbox", { name: "Filter OS images" });
    fireEvent.change(filter, { target: { value: "EFI" } });
    expect(await names()).toEqual(["Ubuntu 24.04"]);
    expect(screen.getByText("1 of 3")).toBeTruthy();
    fireEvent.change(filter, { target: { value: "qcow2 debian" } });
    expect(await names()).toEqual(["Debian 13"]);
    fireEvent.change(filter, { target: { value: "windows" } });
    expect(await screen.findByText("No OS images match the filter")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Clear the filter" }));
    expect(await names()).toHaveLength(3);
  });

  it("shows a large catalog a page at a time; sorting and the filter span every page", async () => {
    const many = `images:\n${Array.from(
      { length: 60 },
      (_, i) =>
        `  - OS_NAME: "Image ${String(i).padStart(2, "0")}"\n    CLOUD_USER: u\n    OS_IMAGE_URL: "https://images.example.test/${i}.img"\n    MIN_VCPU: "${1 + (i % 7)}"\n`,
    ).join("")}`;
    serve(catalogResponse(many));
    renderAt("/catalog", <CatalogPage />);
    expect(await names()).toHaveLength(50);
    expect((await names())[0]).toBe("Image 00");
    fireEvent.click(screen.getAllByRole("button", { name: "Go to next page" })[0] as HTMLElement);
    expect(await names()).toEqual(Array.from({ length: 10 }, (_, i) => `Image ${50 + i}`));
    // Sorting reorders the whole catalog, not the page, and starts again at its first page.
    fireEvent.click(screen.getByRole("button", { name: /Min vCPU/ }));
    fireEvent.click(screen.getByRole("button", { name: /Min vCPU/ }));
    expect((await names()).slice(0, 2)).toEqual(["Image 06", "Image 13"]);
    fireEvent.change(screen.getByRole("textbox", { name: "Filter OS images" }), {
      target: { value: "image 59" },
    });
    expect(await names()).toEqual(["Image 59"]);
  });

  it("opens an entry's details in a drawer, kept in the URL: values as written, cloud-init, findings", async () => {
    serve(catalogResponse(CATALOG));
    const { location } = renderAt("/catalog", <CatalogPage />);
    await table();
    fireEvent.click(screen.getByRole("button", { name: "Debian 13" }));
    const heading = await screen.findByRole("heading", { name: "Debian 13", level: 2 });
    expect(location.history.at(-1)).toBe("/catalog?entry=debian-13");
    const values = screen.getByLabelText("Values as written");
    expect(values.textContent).toContain("OS_COLORblue");
    expect(values.textContent).toContain("MIN_MEMORY512Mi");
    const findings = screen.getByRole("grid", { name: "Findings of Debian 13" });
    expect(findings.textContent).toContain("images[2].OS_COLOR");
    expect(screen.getByText("This entry has no CLOUD_INIT.")).toBeTruthy();
    expect(heading).toBeTruthy();

    fireEvent.click(screen.getByRole("button", { name: "Ubuntu 24.04" }));
    const code = await screen.findByText(/#cloud-config/);
    expect(code.textContent).toContain("- qemu-guest-agent");
    expect(screen.getByText("No findings for this entry")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Close details" }));
    await waitFor(() => expect(location.history.at(-1)).toBe("/catalog"));
  });

  it("shows the image checks once the server reports them", async () => {
    serve(
      catalogResponse(CATALOG, {
        verification: {
          "ubuntu-24.04": {
            entry: "ubuntu-24.04",
            state: "done",
            check: {
              entry: "ubuntu-24.04",
              reachable: true,
              format: "qcow2",
              sizeCheck: "ok",
              checksum: { status: "mismatch", reason: "sha256 differs from OS_IMAGE_SHA256" },
              safety: { safe: true, reasons: [] },
              problems: [],
              ok: false,
              bytesRead: 65536,
              ms: 80,
              checkedAt: "2026-05-01T10:00:00.000Z",
            },
          },
          "alpine-3.22": { entry: "alpine-3.22", state: "pending" },
        },
      }),
    );
    renderAt("/catalog", <CatalogPage />);
    const ubuntu = await rowOf("Ubuntu 24.04");
    for (const label of [
      "Reachable: passed",
      "Checksum verified: failed",
      "Safe format: passed",
      "Boot test passed: not checked",
    ])
      expect(within(ubuntu).getByRole("img", { name: label })).toBeTruthy();
    expect(
      within(await rowOf("Alpine 3.22")).getByRole("img", { name: "Reachable: in progress" }),
    ).toBeTruthy();
    expect(cell(await rowOf("Debian 13"), "Verification")).toBe("not checked");
    fireEvent.click(within(ubuntu).getByRole("button", { name: "Ubuntu 24.04" }));
    const checks = await screen.findByRole("list", { name: "Image checks" });
    expect(checks.textContent).toContain("Checksum verified: failed — sha256 differs from OS_IMAGE_SHA256");
  });

  it("says plainly that the last good catalog is served, with the rejected edit's findings", async () => {
    const good = catalogResponse(CATALOG);
    serve({
      ...good,
      servingLastGood: true,
      lastReload: {
        at: "2026-05-01T10:00:00.000Z",
        ok: false,
        version: "fedcba",
        source: good.source,
        counts: { error: 1, warning: 0, info: 0 },
        findings: [
          {
            severity: "error",
            code: "quantity.unit",
            path: "images[0].MIN_MEMORY",
            line: 5,
            column: 17,
            message: 'MIN_MEMORY: "8 GB" has an unknown unit " GB"',
            hint: 'write "8G" or "8Gi"',
          },
        ],
      },
    });
    renderAt("/catalog", <CatalogPage />);
    const alert = await screen.findByRole("heading", {
      name: /Serving the last good catalog: the latest edit was rejected/,
    });
    expect(alert).toBeTruthy();
    const rejected = screen.getByRole("grid", { name: "Findings of the rejected edit" });
    expect(rejected.textContent).toContain("5:17");
    expect(rejected.textContent).toContain('"8 GB" has an unknown unit');
    expect(screen.getByText(/has 1 error\. Until they are fixed, osimg keeps serving/)).toBeTruthy();
    // The last good entries are still listed.
    expect(await names()).toHaveLength(3);
  });

  it("shows an empty catalog as such", async () => {
    serve(catalogResponse("images: []\n"));
    renderAt("/catalog", <CatalogPage />);
    expect(await screen.findByRole("heading", { name: "No OS images in the catalog" })).toBeTruthy();
    expect(screen.getByText(/lists no images/)).toBeTruthy();
  });

  it("shows the server's message and hint when the catalog cannot be loaded", async () => {
    serve(
      {
        error: "catalog_unavailable",
        message: "no valid catalog has been loaded yet",
        hint: "GET /api/v1/catalog shows the findings of the last reload",
      },
      503,
    );
    renderAt("/catalog", <CatalogPage />);
    expect(await screen.findByRole("heading", { name: "Cannot load the catalog" })).toBeTruthy();
    expect(screen.getByRole("alert").textContent).toBe("no valid catalog has been loaded yet");
    expect(screen.getByText("GET /api/v1/catalog shows the findings of the last reload")).toBeTruthy();
  });
});
