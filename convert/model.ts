// What a converter produces: the list configuration, the Envoy routes its route names need, import files for
// seed entries, and a report with one line per source element (file:line), so nothing is dropped silently.
import { readFileSync } from "node:fs";

const SCHEMA = JSON.parse(
  readFileSync(new URL("../schema/plugin-config.schema.json", import.meta.url), "utf8"),
) as {
  definitions: {
    operation: { properties: Record<string, unknown> };
    sharedContextName: { not: { enum: string[] } };
  };
};

/** The operation fields, in the order the schema (and so docs/filter.md) lists them: the schema is their one source. */
export const OPERATION_FIELDS: readonly string[] = Object.keys(SCHEMA.definitions.operation.properties);

/** Names Envoy answers itself before filter state: the schema's sharedContextName exclusions. */
export const RESERVED_SHARED_CONTEXT_NAMES: ReadonlySet<string> = new Set(
  SCHEMA.definitions.sharedContextName.not.enum,
);

export type Operation = Record<string, unknown>;

export interface ListConfiguration {
  operations?: Operation[];
  routes?: Record<string, Operation[]>;
}

/** An Envoy route (route_config virtual host route) the `routes` map is keyed by. */
export interface EnvoyRoute {
  name: string;
  match: Record<string, unknown>;
  /** The Envoy cluster the route sends to (the Kong service); the --upstream flag's otherwise. */
  cluster?: string;
}

/** Entries for `envoy-kvm kvm import <kvm> <file>` (the apigeecli file shape). */
export interface ImportFile {
  kvm: string;
  entries: { name: string; value: string }[];
}

export type Severity = "converted" | "note" | "unsupported";

export interface ReportLine {
  file: string;
  line: number;
  severity: Severity;
  message: string;
}

export class Report {
  readonly lines: ReportLine[] = [];

  add(file: string, line: number, severity: Severity, message: string): void {
    this.lines.push({ file, line, severity, message });
  }

  /** Complete: no source element was left without an equivalent. */
  get complete(): boolean {
    return !this.lines.some((l) => l.severity === "unsupported");
  }

  /** One line per element, by file then line. */
  format(): string[] {
    const sorted = [...this.lines].sort((a, b) =>
      a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line,
    );
    return sorted.map((l) => `${l.file}:${l.line}: ${l.severity}: ${l.message}`);
  }
}

export interface Conversion {
  config: ListConfiguration;
  envoyRoutes: EnvoyRoute[];
  imports: ImportFile[];
  report: Report;
  /** Where routes without a cluster of their own send (an Apigee proxy's one TargetEndpoint URL). */
  upstreamUrl?: string;
}

export type Policy = "local" | "cluster";

/** kvm_name in the schema: 1 to 128 letters, digits, `.`, `_` or `-`. */
export const KVM_NAME = /^[A-Za-z0-9._-]{1,128}$/;
/** The schema's largest cache_ttl (seconds). */
export const MAX_CACHE_TTL = 86400;

/** An operation with its fields in the order the documentation lists them. */
export function ordered(op: Operation): Operation {
  const order = OPERATION_FIELDS;
  const out: Operation = {};
  for (const k of order) if (op[k] !== undefined) out[k] = op[k];
  for (const k of Object.keys(op)) if (!(k in out)) out[k] = op[k];
  return out;
}

/** "1 entry", "2 entries". */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
