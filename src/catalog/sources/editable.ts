// A catalog source that can be edited through the API: read its text with a version, and write a new
// text only if the version is still the one the editor started from (optimistic concurrency) and the
// new text has no errors. Nothing is written otherwise, so nothing is lost.
import type { CatalogSource } from "../catalog.ts";
import type { Finding } from "../findings.ts";

export interface SourceText {
  text: string;
  /** sha256 of the text: the version an edit must name to be accepted. */
  version: string;
}

export type WriteResult =
  | { ok: true; version: string }
  | { ok: false; reason: "conflict"; version: string }
  | { ok: false; reason: "invalid"; findings: Finding[] }
  | { ok: false; reason: "read-only"; message: string };

export interface EditableSource {
  readonly source: CatalogSource;
  readText(): Promise<SourceText>;
  writeText(text: string, expectedVersion: string): Promise<WriteResult>;
}
