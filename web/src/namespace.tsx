// The project (namespace) the UI works in, kept in the URL (?ns=) so that a link carries it. The catalog
// is shared by all projects; VMs and the Create VM dialog are per project.
import { InputGroup, InputGroupItem, InputGroupText, TextInput } from "@patternfly/react-core";
import { type FormEvent, useEffect, useId, useState } from "react";
import { useSearchParams } from "wouter";

export const DEFAULT_NAMESPACE = "default";
const RECENT_KEY = "osimg.recentNamespaces";
const MAX_RECENT = 8;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Why a namespace name is not usable, or undefined when it is (a DNS-1123 label). */
export function namespaceProblem(name: string): string | undefined {
  if (name === "") return "enter a project name";
  if (name.length > 63) return "at most 63 characters";
  if (!DNS1123_LABEL.test(name))
    return "lower-case letters, digits and '-', starting and ending with a letter or digit";
  return undefined;
}

export function useNamespace(): string {
  const [params] = useSearchParams();
  const ns = params.get("ns");
  return ns !== null && namespaceProblem(ns) === undefined ? ns : DEFAULT_NAMESPACE;
}

/** A path in the app that keeps the current project. */
export function withNamespace(path: string, namespace: string): string {
  return namespace === DEFAULT_NAMESPACE ? path : `${path}?ns=${encodeURIComponent(namespace)}`;
}

function readRecent(): string[] {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) ?? "[]") as unknown;
    return Array.isArray(list) ? list.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

function remember(namespace: string): string[] {
  const list = [namespace, ...readRecent().filter((x) => x !== namespace)].slice(0, MAX_RECENT);
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(list));
  } catch {
    // Storage may be full or disabled; the list is a convenience.
  }
  return list;
}

export function NamespaceSelector() {
  const namespace = useNamespace();
  const [, setParams] = useSearchParams();
  const [draft, setDraft] = useState(namespace);
  const [recent, setRecent] = useState<string[]>(() => readRecent());
  const id = useId();
  useEffect(() => setDraft(namespace), [namespace]);
  const problem = namespaceProblem(draft);

  const apply = (event?: FormEvent) => {
    event?.preventDefault();
    if (problem !== undefined || draft === namespace) return;
    setRecent(remember(draft));
    setParams(
      (params) => {
        if (draft === DEFAULT_NAMESPACE) params.delete("ns");
        else params.set("ns", draft);
        return params;
      },
      { replace: false },
    );
  };

  return (
    <form onSubmit={apply} className="osimg-namespace" noValidate>
      <InputGroup>
        <InputGroupText>
          <label htmlFor={id}>Project</label>
        </InputGroupText>
        <InputGroupItem isFill>
          <TextInput
            id={id}
            value={draft}
            onChange={(_event, value) => setDraft(value.trim().toLowerCase())}
            onBlur={() => apply()}
            validated={problem === undefined ? "default" : "error"}
            aria-describedby={problem === undefined ? undefined : `${id}-problem`}
            list={`${id}-recent`}
            autoComplete="off"
            spellCheck={false}
          />
        </InputGroupItem>
      </InputGroup>
      <datalist id={`${id}-recent`}>
        {[DEFAULT_NAMESPACE, ...recent.filter((x) => x !== DEFAULT_NAMESPACE)].map((x) => (
          <option key={x} value={x} />
        ))}
      </datalist>
      {problem !== undefined ? (
        <span id={`${id}-problem`} className="osimg-field-problem" role="alert">
          {problem}
        </span>
      ) : null}
    </form>
  );
}
