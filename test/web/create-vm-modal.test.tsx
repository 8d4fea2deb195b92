// @vitest-environment happy-dom
// The Create VM dialog against a fake server: choosing an operating system fills in its minimums and its
// cloud-init; a size below a minimum, a bad name, a bad key or broken cloud-init is an inline error and
// the dialog cannot go on; Review shows the server's dry run; Create sends the request and hands back the
// VM; the server's own refusals (422, 409) land on the fields they name.
import { cleanup, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import type { Vm } from "../../src/vms/model.ts";
import CreateVmModal from "../../web/src/vms/CreateVmModal.tsx";
import {
  catalogResponse,
  fakeServer,
  type Reply,
  renderAt,
  type SentRequest,
  vmFixture,
} from "./support.tsx";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const UBUNTU_CLOUD_INIT = "#cloud-config\npackages:\n  - qemu-guest-agent\n";
const CATALOG = `images:
  - OS_NAME: "Ubuntu 24.04"
    CLOUD_USER: ubuntu
    OS_IMAGE_URL: "https://images.example.test/noble.img"
    MIN_MEMORY: "2Gi"
    MIN_VCPU: "2"
    MIN_STORAGE: "20G"
    FIRMWARE_TYPE: "efi"
    CLOUD_INIT: |
      #cloud-config
      packages:
        - qemu-guest-agent
  - OS_NAME: "Cirros"
    CLOUD_USER: cirros
    OS_IMAGE_URL: "https://images.example.test/cirros.img"
`;
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3p8n8Qm0pQm4r6c8a1b2c3d4e5f6g7h8i9j0k1l2m3 me@laptop";
const RENDERED = { format: "argv", text: "qemu-system-x86_64\n-name\ndemo/web-1" };

function serve(create: (request: SentRequest) => Reply = () => ({ status: 201, body: vmFixture("web-1") })) {
  return fakeServer({
    "GET /api/create-vm/demo/os-images": () => ({ body: (parse(CATALOG) as { images: unknown[] }).images }),
    "GET /api/v1/catalog": () => ({ body: catalogResponse(CATALOG) }),
    "POST /api/v1/namespaces/demo/vms": (request) =>
      request.query.get("dryRun") === "true" ? { body: { rendered: RENDERED } } : create(request),
  });
}

function open(image?: string) {
  const onCreated = vi.fn<(vm: Vm) => void>();
  const onClose = vi.fn();
  renderAt("/vms", <CreateVmModal namespace="demo" image={image} onClose={onClose} onCreated={onCreated} />);
  return { onCreated, onClose };
}

const input = (label: RegExp | string) => screen.findByLabelText(label) as Promise<HTMLInputElement>;
const os = () => screen.findByLabelText(/^Operating system/) as Promise<HTMLSelectElement>;
const cloudInit = () => screen.findByRole("textbox", { name: "Cloud-init" }) as Promise<HTMLTextAreaElement>;
const reviewButton = () => screen.findByRole("button", { name: "Review" }) as Promise<HTMLButtonElement>;

async function set(label: RegExp | string, value: string) {
  fireEvent.change(await input(label), { target: { value } });
}

/** The helper or error text under a field. */
async function helpOf(label: RegExp | string): Promise<string> {
  const field = await input(label);
  const id = field.getAttribute("aria-describedby");
  const help = id ? document.getElementById(id)?.cloneNode(true) : undefined;
  if (!(help instanceof HTMLElement)) return "";
  // Without what only screen readers hear (PatternFly's ": error status;").
  for (const sr of help.querySelectorAll(".pf-v6-screen-reader")) sr.remove();
  return help.textContent ?? "";
}

async function fillValid() {
  await set(/^Name/, "web-1");
  fireEvent.change(await os(), { target: { value: "Ubuntu 24.04" } });
  await waitFor(async () => expect((await reviewButton()).disabled).toBe(false));
}

describe("Create VM dialog", () => {
  it("fills vCPU, memory, storage and cloud-init with the chosen operating system's values", async () => {
    serve();
    open();
    const select = await os();
    expect([...select.options].map((o) => o.textContent)).toEqual([
      "Choose an operating system",
      "Ubuntu 24.04",
      "Cirros",
    ]);
    fireEvent.change(select, { target: { value: "Ubuntu 24.04" } });
    expect((await input(/^vCPU/)).value).toBe("2");
    expect((await input("Memory")).value).toBe("2Gi");
    expect((await input("Storage")).value).toBe("20G");
    expect((await cloudInit()).value).toBe(UBUNTU_CLOUD_INIT);
    expect(await helpOf("Memory")).toBe("At least 2Gi");
    // An entry without minimums: the server's defaults, storage left to the image's size.
    fireEvent.change(select, { target: { value: "Cirros" } });
    expect((await input(/^vCPU/)).value).toBe("1");
    expect((await input("Memory")).value).toBe("1Gi");
    expect((await input("Storage")).value).toBe("");
    expect((await cloudInit()).value).toBe("");
  });

  it("starts with the entry it was opened from", async () => {
    serve();
    open("Ubuntu 24.04");
    expect((await os()).value).toBe("Ubuntu 24.04");
    expect((await input("Memory")).value).toBe("2Gi");
  });

  it("cannot go on until a name and an operating system are given", async () => {
    serve();
    open();
    expect((await reviewButton()).disabled).toBe(true);
    await set(/^Name/, "web-1");
    expect((await reviewButton()).disabled).toBe(true);
    fireEvent.change(await os(), { target: { value: "Cirros" } });
    await waitFor(async () => expect((await reviewButton()).disabled).toBe(false));
  });

  it("refuses a size below the minimum inline, by the server's rules, and accepts it again at the minimum", async () => {
    serve();
    open("Ubuntu 24.04");
    await set(/^Name/, "web-1");
    await set("Memory", "1Gi");
    await waitFor(async () =>
      expect(await helpOf("Memory")).toBe('1Gi is below the minimum 2Gi of "Ubuntu 24.04".'),
    );
    expect((await input("Memory")).getAttribute("aria-invalid")).toBe("true");
    expect((await reviewButton()).disabled).toBe(true);
    await set(/^vCPU/, "1");
    await waitFor(async () => expect(await helpOf(/^vCPU/)).toContain("1 vCPU is below the minimum"));
    await set("Storage", "19G");
    await waitFor(async () => expect(await helpOf("Storage")).toContain("below the minimum 20G"));
    // Quantities are compared by value: 2Gi is more than 2G, and 20Gi more than 20G.
    await set("Memory", "2147483648");
    await set(/^vCPU/, "2");
    await set("Storage", "20Gi");
    await waitFor(async () => expect((await reviewButton()).disabled).toBe(false));
    expect(await helpOf("Memory")).toBe("At least 2Gi");
  });

  it("says what is wrong with a vCPU count or a size that is no number", async () => {
    serve();
    open("Ubuntu 24.04");
    await set(/^vCPU/, "two");
    await waitFor(async () => expect(await helpOf(/^vCPU/)).toBe('"two" is not a whole number.'));
    await set("Memory", "2 GB");
    await waitFor(async () => expect(await helpOf("Memory")).toMatch(/unknown unit/));
    expect((await reviewButton()).disabled).toBe(true);
  });

  it("checks the name as it is typed (DNS-1123)", async () => {
    serve();
    open("Cirros");
    await set(/^Name/, "Web_1");
    await waitFor(async () => expect(await helpOf(/^Name/)).toMatch(/"Web_1" is not a valid VM name/));
    expect((await reviewButton()).disabled).toBe(true);
    await set(/^Name/, "web-1");
    await waitFor(async () => expect(await helpOf(/^Name/)).toMatch(/^Lower-case letters/));
    await set(/^Name/, `a${"b".repeat(63)}`);
    await waitFor(async () => expect(await helpOf(/^Name/)).toMatch(/not a valid VM name/));
    await set(/^Name/, "");
    await waitFor(async () => expect(await helpOf(/^Name/)).toMatch(/^Enter a name\. Lower-case letters/));
  });

  it("takes SSH keys pasted or from .pub files, and names the line of a bad one", async () => {
    serve();
    open("Cirros");
    const keys = (await screen.findByLabelText("SSH public keys")) as HTMLTextAreaElement;
    fireEvent.change(keys, { target: { value: `${KEY}\nnot-a-key` } });
    await waitFor(async () =>
      expect(document.getElementById(keys.getAttribute("aria-describedby") ?? "")?.textContent).toMatch(
        /^Line 2: not an OpenSSH public key/,
      ),
    );
    fireEvent.change(keys, { target: { value: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n" } });
    await waitFor(() => expect(screen.getByText(/this is a private key/i)).toBeTruthy());

    fireEvent.change(keys, { target: { value: KEY } });
    const second = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvW2f0mQ8Gq1Xc7oEJZ5wq9p4m3k2j1h0g9f8e7d6c5 ci@host";
    const file = new File([`${second}\n`], "id_ci.pub", { type: "text/plain" });
    fireEvent.change(screen.getByLabelText("SSH public key files"), { target: { files: [file] } });
    await waitFor(() => expect(keys.value).toBe(`${KEY}\n${second}`));
    expect(screen.getByText("2 keys")).toBeTruthy();
  });

  it("marks broken cloud-init at its line in the editor", async () => {
    serve();
    const { container } = { container: document.body };
    open("Ubuntu 24.04");
    fireEvent.change(await cloudInit(), { target: { value: "#cloud-config\npackages: a: b\n" } });
    await waitFor(() => expect(container.querySelector('.osimg-editor-mark[data-line="2"]')).toBeTruthy());
    expect((await cloudInit()).getAttribute("aria-invalid")).toBe("true");
    expect((await reviewButton()).disabled).toBe(true);
  });

  it("reviews the server's dry run, then creates exactly the reviewed request", async () => {
    const { sent } = serve();
    const { onCreated } = open();
    await fillValid();
    const keys = (await screen.findByLabelText("SSH public keys")) as HTMLTextAreaElement;
    fireEvent.change(keys, { target: { value: `# my laptop\n${KEY}\n` } });
    fireEvent.change(await cloudInit(), { target: { value: "#cloud-config\npackages:\n  - nginx\n" } });
    await waitFor(async () => expect((await reviewButton()).disabled).toBe(false));
    fireEvent.click(await reviewButton());
    expect(await screen.findByRole("heading", { name: "Review: web-1" })).toBeTruthy();
    const code = await screen.findByLabelText("What will be created");
    expect(code.textContent).toContain("qemu-system-x86_64");
    const summary = screen.getByLabelText("The VM to create");
    const term = within(summary).getByText("SSH keys").closest("dt");
    expect(term?.nextElementSibling?.textContent).toBe("1 key");

    fireEvent.click(screen.getByRole("button", { name: "Create" }));
    await waitFor(() => expect(onCreated).toHaveBeenCalledOnce());
    expect(onCreated.mock.calls[0]?.[0].name).toBe("web-1");
    const posts = sent.filter((r) => r.method === "POST");
    expect(posts.map((r) => r.query.get("dryRun"))).toEqual(["true", null]);
    const expected = {
      name: "web-1",
      image: "Ubuntu 24.04",
      cpu: 2,
      memory: "2Gi",
      storage: "20G",
      sshKeys: [KEY],
      cloudInit: "#cloud-config\npackages:\n  - nginx\n",
    };
    expect(posts[0]?.body).toEqual(expected);
    expect(posts[1]?.body).toEqual(expected);
  });

  it("shows the server's 422 on the fields it names, and goes back to them", async () => {
    serve(() => ({ status: 201, body: vmFixture("web-1") }));
    // The dry run is refused: the server knows the image is larger than the disk.
    fakeServer({
      "GET /api/create-vm/demo/os-images": () => ({ body: (parse(CATALOG) as { images: unknown[] }).images }),
      "GET /api/v1/catalog": () => ({ body: catalogResponse(CATALOG) }),
      "POST /api/v1/namespaces/demo/vms": () => ({
        status: 422,
        body: {
          error: "invalid_vm",
          message: "storage: 20G is smaller than the image itself (30 GiB)",
          details: [
            {
              field: "storage",
              message: "20G is smaller than the image itself (30 GiB)",
              minimum: "32212254720",
              hint: "the image would not fit on the disk",
            },
          ],
        },
      }),
    });
    open();
    await fillValid();
    fireEvent.click(await reviewButton());
    await waitFor(async () =>
      expect(await helpOf("Storage")).toBe(
        "20G is smaller than the image itself (30 GiB). The image would not fit on the disk.",
      ),
    );
    expect(screen.queryByRole("heading", { name: /^Review/ })).toBeNull();
    expect((await reviewButton()).disabled).toBe(true);
    // Changing the field clears the server's word about it.
    await set("Storage", "40G");
    await waitFor(async () => expect((await reviewButton()).disabled).toBe(false));
    expect(await helpOf("Storage")).toBe("At least 20G");
  });

  it("puts a 409 (the name is taken) on the name", async () => {
    serve(() => ({
      status: 409,
      body: { error: "exists", message: 'a VM "web-1" already exists in namespace demo' },
    }));
    const { onCreated } = open();
    await fillValid();
    fireEvent.click(await reviewButton());
    fireEvent.click(await screen.findByRole("button", { name: "Create" }));
    await waitFor(async () =>
      expect(await helpOf(/^Name/)).toBe(
        'A VM "web-1" already exists in namespace demo. Choose another name.',
      ),
    );
    expect(onCreated).not.toHaveBeenCalled();
  });

  it("shows a failure that belongs to no field in the server's words, keeping the review", async () => {
    serve(() => ({
      status: 503,
      body: {
        error: "unavailable",
        message: "qemu-system-x86_64 is not installed",
        hint: "install qemu-system-x86",
      },
    }));
    open();
    await fillValid();
    fireEvent.click(await reviewButton());
    fireEvent.click(await screen.findByRole("button", { name: "Create" }));
    expect(
      await screen.findByText("Qemu-system-x86_64 is not installed. Install qemu-system-x86."),
    ).toBeTruthy();
    expect(screen.getByRole("heading", { name: "Review: web-1" })).toBeTruthy();
  });

  it("shows why the operating systems cannot be loaded", async () => {
    fakeServer({
      "GET /api/v1/catalog": () => ({ body: catalogResponse(CATALOG) }),
      "GET /api/create-vm/demo/os-images": () => ({
        status: 503,
        body: { error: "catalog_unavailable", message: "no valid catalog has been loaded yet" },
      }),
    });
    open();
    expect(await screen.findByText("no valid catalog has been loaded yet")).toBeTruthy();
  });
});
