// The worst-case requests of the linear-cost test (test/filter/linear-cost.test.ts) and the
// escape benchmark (bench/filter-escape.ts): for a source and a destination, a put from the source
// and a get of the same key into the destination, carrying a value of one repeated character.

export type SourceKind = "header" | "query" | "body field" | "whole body" | "shared_context" | "literal";
export type DestinationKind =
  "header" | "response_header" | "query" | "body field" | "whole body" | "shared_context";

export const SOURCES: SourceKind[] = [
  "header",
  "query",
  "body field",
  "whole body",
  "shared_context",
  "literal",
];
export const DESTINATIONS: DestinationKind[] = [
  "header",
  "response_header",
  "query",
  "body field",
  "whole body",
  "shared_context",
];

// The worst characters: `"` doubles in JSON and triples in a query; U+0001 becomes six bytes in
// JSON (\u0001) and three in a query, and cannot travel in a header.
export const WORST = ['"', "\u0001"];

export function headerSafe(source: SourceKind, destination: DestinationKind): boolean {
  return source === "header" || destination === "header" || destination === "response_header";
}

function valueSource(source: SourceKind, value: string): Record<string, string> {
  switch (source) {
    case "header":
      return { value_source_type: "header", value_source_name: "x-v" };
    case "query":
      return { value_source_type: "query", value_source_name: "v" };
    case "body field":
      return { value_source_type: "body", value_source_name: "v" };
    case "whole body":
      return { value_source_type: "body", value_source_name: "" };
    case "shared_context":
      return { value_source_type: "shared_context", value_source_name: "s" };
    case "literal":
      return { value_source_type: "literal", value_source_name: value };
  }
}

function outputDestination(destination: DestinationKind): Record<string, string> {
  const [type, name] = {
    header: ["header", "x-w"],
    response_header: ["response_header", "x-w"],
    query: ["query", "w"],
    "body field": ["body", "w"],
    "whole body": ["body", ""],
    shared_context: ["shared_context", "t"],
  }[destination];
  return { output_destination_type: type, output_destination_name: name };
}

export function configuration(source: SourceKind, destination: DestinationKind, value: string) {
  const key = { kvm_name: "cost", key_source_type: "literal", key_source_name: "k" };
  return {
    operations: [
      { ...key, operation_type: "put", ...valueSource(source, value) },
      { ...key, operation_type: "get", ...outputDestination(destination) },
    ],
  };
}

// The request carrying `value` in `source`; the body is always a JSON object, so body
// destinations have one to write to. A whole-body source is a JSON object whose text is made of
// the character's JSON escapes (the value stored is that text, at most 1 MiB).
export function request(source: SourceKind, char: string, size: number): Request {
  const value = char.repeat(size);
  const headers: [string, string][] = [["content-type", "application/json"]];
  let path = "/p";
  let body = "{}";
  const filterState: Record<string, string> = {};
  if (source === "header") headers.push(["x-v", value]);
  if (source === "query") path = "/p?v=" + encodeURIComponent(value);
  if (source === "body field") body = JSON.stringify({ v: value });
  if (source === "whole body") {
    const escape = JSON.stringify(char).slice(1, -1);
    body = '{"x":"' + escape.repeat(Math.floor((size - 8) / escape.length)) + '"}';
  }
  if (source === "shared_context") filterState.s = value;
  return { path, headers, body, filterState };
}

export interface Request {
  path: string;
  headers: [string, string][];
  body: string;
  filterState: Record<string, string>;
}
