// @vitest-environment happy-dom
// The YAML editor against a fake server: live validation by the server's own parser with findings at
// their lines, and saving with If-Match: saved, refused as a conflict (the text is kept and can be
// saved over theirs or dropped for theirs), refused with findings.
import { cleanup, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import CatalogEditorPage from "../../web/src/pages/CatalogEditorPage.tsx";
import { catalogResponse, fakeServer, type Reply, renderAt, type SentRequest } from "./support.tsx";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const VALID = `# the operators' catalog
images:
  - OS_NAME: "Alpine 3.22"
    CLOUD_USER: alpine
    OS_IMAGE_URL: "https://images.example.test/alpine.qcow2"
    MIN_MEMORY: "512Mi"
`;
const BROKEN = VALID.replace('"512Mi"', '"2 GB"');
/** Where the parser places the error in BROKEN: the value of MIN_MEMORY. */
const AT = { line: 6, column: 17 };
const RENAMED = VALID.replace("Alpine 3.22", "Alpine 3.23");
const SOURCE = { kind: "file", location: "/etc/osimg/images.yaml" };

function server(put: (request: SentRequest) => Reply, sources: { text: string; version: string }[] = []) {
  const queue = [{ text: VALID, version: "v1" }, ...sources];
  return fakeServer({
    "GET /api/v1/catalog": () => ({ body: catalogResponse(VALID) }),
    "GET /api/v1/catalog/source": () => ({
      body: { ...(queue.length > 1 ? queue.shift() : queue[0]), source: SOURCE },
    }),
    "PUT /api/v1/catalog/source": put,
  });
}

const editor = () => screen.findByRole("textbox", { name: /^Catalog YAML/ }) as Promise<HTMLTextAreaElement>;
const type = async (text: string) => fireEvent.change(await editor(), { target: { value: text } });
const saveButton = () => screen.getByRole("button", { name: "Save" }) as HTMLButtonElement;

describe("catalog YAML editor", () => {
  it("validates as you type with the server's parser and shows findings at their lines", async () => {
    server(() => ({ body: { version: "v2" } }));
    const { container } = renderAt("/catalog/edit", <CatalogEditorPage />);
    expect((await editor()).value).toBe(VALID);
    expect((await screen.findByRole("status")).textContent).toContain("Valid: 1 entry");
    expect(saveButton().disabled).toBe(true); // nothing changed yet

    await type(BROKEN);
    const at = AT;
    await waitFor(() =>
      expect(screen.getByRole("status").textContent).toContain("1 error — fix the errors to save"),
    );
    const findings = screen.getByRole("grid", { name: "Findings of the edited catalog" });
    expect(findings.textContent).toContain(`${at.line}:${at.column}`);
    expect(findings.textContent).toContain('MIN_MEMORY: "2 GB" has an unknown unit " GB"');
    const mark = container.querySelector(`.osimg-editor-mark[data-line="${at.line}"]`);
    expect(mark?.getAttribute("data-severity")).toBe("error");
    expect(saveButton().disabled).toBe(true);

    await type(RENAMED);
    await waitFor(() => expect(screen.getByRole("status").textContent).toContain("Valid: 1 entry"));
    expect(container.querySelector(".osimg-editor-mark")).toBeNull();
    expect(saveButton().disabled).toBe(false);
  });

  it("moves the cursor to a finding when its position is clicked", async () => {
    server(() => ({ body: { version: "v2" } }));
    renderAt("/catalog/edit", <CatalogEditorPage />);
    await type(BROKEN);
    const at = AT;
    fireEvent.click(
      await screen.findByRole("button", { name: `go to line ${at.line}, column ${at.column}` }),
    );
    const textarea = await editor();
    expect(textarea.selectionStart).toBe(BROKEN.indexOf('"2 GB"'));
    expect(screen.getByText(`Line ${at.line}, column ${at.column}`)).toBeTruthy();
  });

  it("saves the text with If-Match of the version it was based on", async () => {
    const { sent } = server(() => ({ body: { version: "v2" } }));
    renderAt("/catalog/edit", <CatalogEditorPage />);
    await type(RENAMED);
    await waitFor(() => expect(saveButton().disabled).toBe(false));
    fireEvent.click(saveButton());
    expect(await screen.findByRole("heading", { name: /Saved/ })).toBeTruthy();
    const put = sent.find((r) => r.method === "PUT");
    expect(put?.headers.get("if-match")).toBe('"v1"');
    expect(put?.body).toEqual({ text: RENAMED });
    // Now based on the saved version: nothing left to save.
    expect(saveButton().disabled).toBe(true);
  });

  it("keeps the text when someone saved first, and saves it over theirs when asked", async () => {
    const versions: (string | null)[] = [];
    const { sent } = server(
      (request) => {
        versions.push(request.headers.get("if-match"));
        return versions.length === 1
          ? {
              status: 409,
              body: {
                error: "conflict",
                message: "the catalog was changed by someone else since you loaded it; nothing was saved",
              },
            }
          : { body: { version: "v3" } };
      },
      [{ text: VALID.replace("# the operators' catalog", "# edited elsewhere"), version: "v2" }],
    );
    renderAt("/catalog/edit", <CatalogEditorPage />);
    await type(RENAMED);
    await waitFor(() => expect(saveButton().disabled).toBe(false));
    fireEvent.click(saveButton());
    const alert = (await screen.findByRole("heading", { name: /Someone else saved the catalog first/ }))
      .parentElement as HTMLElement;
    expect(alert.textContent).toContain("changed by someone else");
    expect((await editor()).value).toBe(RENAMED);
    expect(saveButton().disabled).toBe(false);

    fireEvent.click(within(alert).getByRole("button", { name: "Save mine over theirs" }));
    expect(await screen.findByRole("heading", { name: /Saved/ })).toBeTruthy();
    expect(versions).toEqual(['"v1"', '"v2"']);
    expect(sent.filter((r) => r.method === "PUT").map((r) => r.body)).toEqual([
      { text: RENAMED },
      { text: RENAMED },
    ]);
  });

  it("drops the edit for theirs when asked, after a conflict", async () => {
    const theirs = VALID.replace("# the operators' catalog", "# edited elsewhere");
    server(
      () => ({ status: 409, body: { error: "conflict", message: "changed by someone else" } }),
      [{ text: theirs, version: "v2" }],
    );
    renderAt("/catalog/edit", <CatalogEditorPage />);
    await type(RENAMED);
    await waitFor(() => expect(saveButton().disabled).toBe(false));
    fireEvent.click(saveButton());
    fireEvent.click(await screen.findByRole("button", { name: "Discard mine and load theirs" }));
    await waitFor(async () => expect((await editor()).value).toBe(theirs));
    expect(saveButton().disabled).toBe(true);
  });

  it("shows the server's findings when it refuses the text", async () => {
    server(() => ({
      status: 422,
      body: {
        error: "invalid_catalog",
        message: "the catalog has 1 error(s); nothing was saved",
        findings: [
          {
            severity: "error",
            code: "entry.duplicate",
            path: "images[0].OS_NAME",
            line: 3,
            column: 15,
            message: 'OS_NAME "Alpine 3.23" is used by another entry',
          },
        ],
      },
    }));
    renderAt("/catalog/edit", <CatalogEditorPage />);
    await type(RENAMED);
    await waitFor(() => expect(saveButton().disabled).toBe(false));
    fireEvent.click(saveButton());
    expect(await screen.findByRole("heading", { name: /The server refused the catalog/ })).toBeTruthy();
    const refused = screen.getByRole("grid", { name: "Findings of the refused save" });
    expect(refused.textContent).toContain("3:15");
    expect(refused.textContent).toContain("is used by another entry");
    expect((await editor()).value).toBe(RENAMED);
  });

  it("tells a user who may not edit the catalog so", async () => {
    fakeServer({
      "GET /api/v1/catalog": () => ({ body: catalogResponse(VALID) }),
      "GET /api/v1/catalog/source": () => ({
        status: 403,
        body: { error: "forbidden", message: "not allowed to catalog.read" },
      }),
    });
    renderAt("/catalog/edit", <CatalogEditorPage />);
    expect(await screen.findByRole("heading", { name: "Only admins can edit the catalog" })).toBeTruthy();
    expect(screen.getByRole("alert").textContent).toBe("not allowed to catalog.read");
  });
});
