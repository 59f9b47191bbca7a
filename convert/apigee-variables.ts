// Apigee flow variables → envoy-kvm sources and destinations. What the filter can read or write maps
// directly (request headers, query parameters, JSON body fields, the whole body, response headers); other
// policies' variables become shared_context names (set by an earlier operation, or by another filter through
// Envoy filter state); Apigee's own built-in variables and `private.` (encrypted) variables have no equivalent.

import { RESERVED_SHARED_CONTEXT_NAMES } from "./model.ts";

export interface Mapped {
  type: "header" | "query" | "body" | "shared_context" | "response_header" | "literal";
  name: string;
  /** Why it maps (shown in the report), e.g. the ExtractVariables policy a body path came from. */
  via?: string;
}

export type Mapping = Mapped | { unsupported: string };

/** Variables that an ExtractVariables policy fills from a JSON body path: variable → dotted path. */
export type BodyVariables = Map<string, { path: string | null; policy: string }>;

/** Prefixes of Apigee's built-in variables (the flow variables reference), none of which the filter can read. */
const BUILT_IN = [
  "request.",
  "response.",
  "message.",
  "proxy.",
  "target.",
  "client.",
  "system.",
  "environment.",
  "organization.",
  "apiproxy.",
  "apiproduct.",
  "application.",
  "developer.",
  "error.",
  "fault.",
  "is.",
  "route.",
  "router.",
  "servicecallout.",
  "current.",
  "virtualhost.",
  "messageid",
  "mint.",
  "ratelimit.",
];

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** `request.header.X` / `request.queryparam.X` forms that are not the first value of X. */
function multiValueSuffix(name: string): boolean {
  return /\.values(\.count|\.string)?$/.test(name) || /\.\d+$/.test(name);
}

function collection(variable: string, prefix: string, type: Mapped["type"], what: string): Mapping | null {
  if (!variable.startsWith(prefix)) return null;
  const name = variable.slice(prefix.length);
  if (multiValueSuffix(name)) {
    return {
      unsupported: `${variable}: envoy-kvm reads and writes one value of a ${what}, not its value list`,
    };
  }
  if (type !== "query" && !HEADER_NAME.test(name)) {
    return { unsupported: `${variable}: "${name}" is not a header name` };
  }
  if (name === "") return { unsupported: `${variable}: no ${what} name` };
  return { type, name: type === "query" ? name : name.toLowerCase() };
}

function sharedContext(variable: string): Mapping {
  if (variable.startsWith("private.")) {
    return {
      unsupported: `${variable}: private (encrypted) variables have no equivalent until envoy-kvm encrypts values`,
    };
  }
  if (BUILT_IN.some((p) => variable === p.replace(/\.$/, "") || variable.startsWith(p))) {
    return { unsupported: `${variable}: an Apigee built-in variable the filter cannot read or write` };
  }
  if (RESERVED_SHARED_CONTEXT_NAMES.has(variable) || variable.includes("\0")) {
    return { unsupported: `${variable}: a name Envoy answers itself, not usable as a shared_context name` };
  }
  return { type: "shared_context", name: variable };
}

/** A variable a Key/Parameter or Value `ref` reads. */
export function sourceOf(variable: string, body: BodyVariables): Mapping {
  const v = variable.trim();
  if (v === "request.content") return { type: "body", name: "" };
  const fromBody = body.get(v);
  const bodyPath = fromBody?.path;
  if (fromBody !== undefined && bodyPath === null) {
    return {
      unsupported: `${v}: set by ExtractVariables ${fromBody.policy} with a JSONPath that is not a plain dotted path`,
    };
  }
  if (fromBody !== undefined && typeof bodyPath === "string") {
    return { type: "body", name: bodyPath, via: `ExtractVariables ${fromBody.policy}` };
  }
  if (v.startsWith("request.formparam.")) {
    return { unsupported: `${v}: form parameters (the filter reads JSON bodies only)` };
  }
  return (
    collection(v, "request.header.", "header", "header") ??
    collection(v, "request.queryparam.", "query", "query parameter") ??
    sharedContext(v)
  );
}

/** The variable a Get's `assignTo` writes. */
export function destinationOf(variable: string): Mapping {
  const v = variable.trim();
  if (v === "request.content") return { type: "body", name: "" };
  if (v.startsWith("request.formparam.")) {
    return { unsupported: `${v}: form parameters (the filter writes JSON bodies only)` };
  }
  return (
    collection(v, "request.header.", "header", "header") ??
    collection(v, "request.queryparam.", "query", "query parameter") ??
    collection(v, "response.header.", "response_header", "response header") ??
    sharedContext(v)
  );
}

/** Text that reads as an Apigee message template (`{variable}`), which KeyValueMapOperations takes literally. */
export function looksLikeTemplate(text: string): boolean {
  return /\{[A-Za-z_][\w.-]*\}/.test(text);
}

/**
 * The dotted body path of a simple JSONPath (`$.a.b`, `$.items[0].sku`, `$['a']`), or null for anything else
 * (wildcards, filters, recursive descent).
 */
export function dottedPath(jsonPath: string): string | null {
  const p = jsonPath.trim();
  if (!p.startsWith("$")) return null;
  const segments: string[] = [];
  const re = /\.([A-Za-z_][\w-]*)|\[(\d+)\]|\['([^'.\]]+)'\]/y;
  re.lastIndex = 1;
  while (re.lastIndex < p.length) {
    const m = re.exec(p);
    if (m === null) return null;
    segments.push(m[1] ?? m[2] ?? m[3]);
  }
  return segments.length === 0 ? null : segments.join(".");
}
