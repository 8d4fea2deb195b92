// PATCH bodies as kube-apiserver reads them: JSON merge patch (RFC 7386), strategic merge patch (read as a
// JSON merge patch here: the fake has no Go struct tags to merge lists by key), and JSON patch (RFC 6902).
import jsonPatch from "fast-json-patch";
import { KubeError, unsupportedMediaType } from "./status.ts";

export const PATCH_TYPES = {
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  json: "application/json-patch+json",
  apply: "application/apply-patch+yaml",
} as const;

type Json = unknown;

/** RFC 7386: objects merge key by key, null deletes, anything else (arrays too) replaces. */
export function mergePatch(target: Json, patch: Json): Json {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return structuredClone(patch);
  const base: Record<string, Json> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, Json>) }
      : {};
  for (const [key, value] of Object.entries(patch as Record<string, Json>)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key], value);
  }
  return base;
}

/** Applies a PATCH body of the given content type to a copy of `current`. */
export function applyPatch(current: Json, body: Json, contentType: string): Json {
  const type = contentType.split(";")[0]?.trim() ?? "";
  if (type === PATCH_TYPES.merge || type === PATCH_TYPES.strategic) {
    if (body === null || typeof body !== "object" || Array.isArray(body))
      throw new KubeError(400, "BadRequest", "a merge patch must be a JSON object");
    return mergePatch(current, body);
  }
  if (type === PATCH_TYPES.json) {
    if (!Array.isArray(body))
      throw new KubeError(400, "BadRequest", "a JSON patch must be a JSON array of operations");
    try {
      return jsonPatch.applyPatch(structuredClone(current), body as jsonPatch.Operation[], true, false)
        .newDocument;
    } catch (error) {
      // A failed `test` and a path that does not resolve alike: 422, as the apiserver answers.
      const message = firstLine((error as Error).message);
      throw new KubeError(
        422,
        "Invalid",
        `the server rejected our request due to an error in our request: ${message}`,
      );
    }
  }
  if (type === PATCH_TYPES.apply)
    throw new KubeError(
      415,
      "UnsupportedMediaType",
      "server-side apply is not supported by the fake API server",
    );
  throw unsupportedMediaType(type);
}

const firstLine = (text: string | undefined) => (text ?? "invalid patch").split("\n")[0];
