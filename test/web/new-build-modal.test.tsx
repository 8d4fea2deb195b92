// @vitest-environment happy-dom
// The New build dialog against a fake server: the button only for those who may build (admins; everyone
// with --auth none); the request as sent (kind, spec, files base64 under their edited paths, push only for
// the kinds that make an OCI image); a refused spec's findings listed with the text kept, each moving the
// cursor to its line; other refusals in the server's words; a submitted build opens its page.
import { cleanup, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseSpec } from "../../src/build/spec.ts";
import type { BuildView } from "../../web/src/api/builds.ts";
import { AuthGate } from "../../web/src/auth/AuthGate.tsx";
import { EXAMPLE_SPEC } from "../../web/src/builds/example.ts";
import { offsetAt } from "../../web/src/editor/text.ts";
import BuildsPage from "../../web/src/pages/BuildsPage.tsx";
import { fakeServer, type Reply, renderAt, type SentRequest } from "./support.tsx";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

const QUEUED: BuildView = {
  id: "b7c8d9",
  kind: "container-disk",
  state: "queued",
  runner: "local",
  createdAt: "2026-01-02T03:04:00Z",
  logLines: 0,
};

function serve(
  submit: (request: SentRequest) => Reply | Promise<Reply> = () => ({ status: 202, body: QUEUED }),
) {
  return fakeServer({
    "GET /api/v1/builds": () => ({ body: [] }),
    "GET /api/v1/builds/b7c8d9": () => ({ body: QUEUED }),
    "POST /api/v1/builds": submit,
  });
}

async function openDialog() {
  fireEvent.click(await screen.findByRole("button", { name: "New build" }));
  return screen.findByRole("dialog", { name: "New build" });
}

const specText = () => screen.findByRole("textbox", { name: "Spec (TOML)" }) as Promise<HTMLTextAreaElement>;
const kindSelect = () => screen.findByLabelText(/^Kind/) as Promise<HTMLSelectElement>;
// Its accessible name says "Loading" while sending.
const submitButton = () =>
  document.querySelector<HTMLButtonElement>('button[type="submit"]') as HTMLButtonElement;

describe("New build button", () => {
  const asRole = (whoami: Record<string, unknown>) => {
    sessionStorage.setItem("osimg.token", "t0ken");
    fakeServer({
      "GET /api/v1/auth/config": () => ({ body: { mode: "token" } }),
      "GET /api/v1/whoami": () => ({
        body: { subject: "s", name: "Ann", via: "token", projects: {}, ...whoami },
      }),
      "GET /api/v1/builds": () => ({ body: [] }),
    });
    renderAt(
      "/builds",
      <AuthGate>
        <BuildsPage />
      </AuthGate>,
    );
  };

  it("is offered to admins", async () => {
    asRole({ clusterRole: "admin" });
    expect(await screen.findByRole("button", { name: "New build" })).toBeTruthy();
  });

  it("is not offered to members or viewers, whom the server would refuse", async () => {
    asRole({ clusterRole: "member", projects: { demo: "admin" } });
    expect(await screen.findByRole("heading", { name: "No builds yet" })).toBeTruthy();
    expect(screen.queryByRole("button", { name: "New build" })).toBeNull();
  });

  it("is offered with --auth none, where everyone is admin", async () => {
    fakeServer({
      "GET /api/v1/auth/config": () => ({ body: { mode: "none" } }),
      "GET /api/v1/builds": () => ({ body: [] }),
    });
    renderAt(
      "/builds",
      <AuthGate>
        <BuildsPage />
      </AuthGate>,
    );
    expect(await screen.findByRole("button", { name: "New build" })).toBeTruthy();
  });
});

describe("New build dialog", () => {
  it("starts with vm-img and a small example spec that is valid as it is, needing no files", async () => {
    serve();
    renderAt("/builds", <BuildsPage />);
    await openDialog();
    expect((await kindSelect()).value).toBe("vm-img");
    const options = Array.from((await kindSelect()).options).map((o) => o.value);
    expect(options).toEqual(["vm-img", "pxe-img", "upgrade-img", "container-disk", "admin-container"]);
    expect((await specText()).value).toBe(EXAMPLE_SPEC);
    const parsed = parseSpec(EXAMPLE_SPEC);
    expect(parsed.findings).toEqual([]);
    expect(parsed.spec?.from_repo?.suite).toBe("bookworm");
    expect(parsed.spec?.catalog).toBeDefined();
    expect(EXAMPLE_SPEC).not.toMatch(/copy_files|chroot_script/);
    // No push for a disk kept on the server.
    expect(screen.queryByLabelText("Push to")).toBeNull();
  });

  it("sends the kind, the spec, the files base64 under their edited paths and where to push; then opens the build", async () => {
    const { sent } = serve();
    const { location } = renderAt("/builds", <BuildsPage />);
    const dialog = await openDialog();
    fireEvent.change(await kindSelect(), { target: { value: "container-disk" } });
    fireEvent.change(await specText(), {
      target: { value: `${EXAMPLE_SPEC}\n[[copy_files]]\nsrc = "files/motd"\ndst = "/etc/motd"\n` },
    });
    const motd = new File(["Welcome\n"], "motd", { type: "text/plain" });
    const script = new File([new Uint8Array([0, 1, 2, 255])], "setup.sh");
    fireEvent.change(screen.getByLabelText("Files the spec names"), { target: { files: [motd, script] } });
    const motdPath = (await screen.findByRole("textbox", { name: "Path of motd" })) as HTMLInputElement;
    expect(motdPath.value).toBe("motd");
    fireEvent.change(motdPath, { target: { value: "files/motd" } });
    expect(
      ((await screen.findByRole("textbox", { name: "Path of setup.sh" })) as HTMLInputElement).value,
    ).toBe("setup.sh");
    fireEvent.change(screen.getByLabelText("Push to"), { target: { value: "127.0.0.1:5000/os/debian:12" } });
    const tls = screen.getByLabelText("Verify TLS") as HTMLInputElement;
    expect(tls.checked).toBe(true);
    fireEvent.click(tls);
    fireEvent.click(within(dialog).getByRole("button", { name: "Submit" }));
    await waitFor(() => expect(location.history?.at(-1)).toBe("/builds/b7c8d9"));
    const post = sent.find((r) => r.method === "POST");
    expect(post?.path).toBe("/api/v1/builds");
    expect(post?.body).toEqual({
      kind: "container-disk",
      spec: `${EXAMPLE_SPEC}\n[[copy_files]]\nsrc = "files/motd"\ndst = "/etc/motd"\n`,
      files: { "files/motd": btoa("Welcome\n"), "setup.sh": "AAEC/w==" },
      push: { reference: "127.0.0.1:5000/os/debian:12", tlsVerify: false },
    });
    await waitFor(() => expect(screen.queryByRole("dialog", { name: "New build" })).toBeNull());
  });

  it("sends no push for a kind kept on the server, and no files when none were added", async () => {
    const { sent } = serve();
    renderAt("/builds", <BuildsPage />);
    await openDialog();
    fireEvent.change(await kindSelect(), { target: { value: "upgrade-img" } });
    fireEvent.change(screen.getByLabelText("Push to"), { target: { value: "registry.example/os:1" } });
    fireEvent.change(await kindSelect(), { target: { value: "pxe-img" } });
    expect(screen.queryByLabelText("Push to")).toBeNull();
    fireEvent.click(submitButton());
    await waitFor(() => expect(sent.some((r) => r.method === "POST")).toBe(true));
    expect(sent.find((r) => r.method === "POST")?.body).toEqual({ kind: "pxe-img", spec: EXAMPLE_SPEC });
  });

  it("refuses a file without a path, or two under the same one", async () => {
    serve();
    renderAt("/builds", <BuildsPage />);
    await openDialog();
    fireEvent.change(screen.getByLabelText("Files the spec names"), {
      target: { files: [new File(["a"], "a.txt"), new File(["b"], "b.txt")] },
    });
    fireEvent.change(await screen.findByRole("textbox", { name: "Path of b.txt" }), {
      target: { value: "a.txt" },
    });
    expect(await screen.findAllByText("Another file has this path.")).toHaveLength(2);
    expect(submitButton().disabled).toBe(true);
    fireEvent.click(screen.getByRole("button", { name: "Remove b.txt" }));
    await waitFor(() => expect(submitButton().disabled).toBe(false));
    fireEvent.change(screen.getByRole("textbox", { name: "Path of a.txt" }), {
      target: { value: "../a.txt" },
    });
    expect(await screen.findByText("A path relative to the spec, inside its directory.")).toBeTruthy();
    expect(submitButton().disabled).toBe(true);
  });

  it("lists a refused spec's findings, keeps the text, and moves the cursor to a finding's line", async () => {
    let answer: (reply: Reply) => void = () => {};
    serve(() => new Promise<Reply>((resolve) => (answer = resolve)));
    const { location } = renderAt("/builds", <BuildsPage />);
    const dialog = await openDialog();
    const broken = EXAMPLE_SPEC.replace('suite = "bookworm"', 'suite = "bookworm"\nsise = 3');
    const text = await specText();
    fireEvent.change(text, { target: { value: broken } });
    fireEvent.click(submitButton());
    // Disabled while sending.
    await waitFor(() => expect(submitButton().disabled).toBe(true));
    expect(submitButton().textContent).toContain("Submit");
    answer({
      status: 400,
      body: {
        error: "invalid_spec",
        message: "the spec has errors",
        details: [
          {
            field: "spec:5:1 from_repo.sise",
            message: 'unknown key "sise" in [from_repo] (fix: did you mean "suite"?)',
          },
          { field: "spec:25:8 users[0].passwd", message: "a password must be a crypt hash" },
        ],
      },
    });
    const findings = await within(dialog).findByRole("grid", { name: "Findings of the refused spec" });
    expect(within(dialog).getByText("The server refused the spec")).toBeTruthy();
    expect(findings.textContent).toContain('unknown key "sise" in [from_repo]');
    expect(findings.textContent).toContain('did you mean "suite"?');
    expect(findings.textContent).toContain("from_repo.sise");
    expect(findings.textContent).toContain("users[0].passwd");
    expect(text.value).toBe(broken);
    expect(submitButton().disabled).toBe(false);
    expect(location.history?.at(-1)).toBe("/builds");
    // The gutter marks the lines.
    expect(dialog.querySelector('[data-line="5"][data-severity="error"]')).not.toBeNull();

    fireEvent.click(within(findings).getByRole("button", { name: "go to line 5, column 1" }));
    expect(document.activeElement).toBe(text);
    expect(text.selectionStart).toBe(offsetAt(broken, 5, 1));
    expect(broken.slice(text.selectionStart).startsWith("sise = 3")).toBe(true);
    fireEvent.click(within(findings).getByRole("button", { name: "go to line 25, column 8" }));
    expect(text.selectionStart).toBe(offsetAt(broken, 25, 8));
  });

  it("shows other refusals in the server's words and stays open", async () => {
    serve(() => ({
      status: 400,
      body: {
        error: "invalid_spec",
        message: 'files: "../x" leaves the spec\'s directory',
        field: "files.../x",
        details: [{ field: "files.../x", message: 'files: "../x" leaves the spec\'s directory' }],
      },
    }));
    renderAt("/builds", <BuildsPage />);
    const dialog = await openDialog();
    fireEvent.click(submitButton());
    expect(await within(dialog).findByText("The build was not submitted")).toBeTruthy();
    expect(within(dialog).getByText('Files: "../x" leaves the spec\'s directory.')).toBeTruthy();
    expect(within(dialog).queryByRole("grid", { name: "Findings of the refused spec" })).toBeNull();
  });

  it("shows a forbidden submit in the server's words", async () => {
    serve(() => ({
      status: 403,
      body: { error: "forbidden", message: "build.create needs the admin role", hint: "ask an admin" },
    }));
    renderAt("/builds", <BuildsPage />);
    const dialog = await openDialog();
    fireEvent.click(submitButton());
    expect(await within(dialog).findByText("Build.create needs the admin role. Ask an admin.")).toBeTruthy();
  });
});
