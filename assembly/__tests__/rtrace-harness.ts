// Entry point for test/unit/parser-memory.test.ts: exposes the pure parsers to a Node test that
// runs them under AssemblyScript's own rtrace (lib/rtrace), which checks every allocation, retain,
// release and free. It catches what an output comparison cannot, such as AssemblyScript 0.17's
// reference-count slips in some ternaries, which free a string that is still in use.
import { parseConfig } from "../config";
import { JsonKind, jsonQuote, parseJson } from "../json";
import { JsonSpan, findJsonPath, jsonStringText, scanJson, setJsonPath } from "../json_scan";
import { decodeUtf8 } from "../utf8";

let input: Uint8Array = new Uint8Array(0);
let lastError: string = "";

// Allocates the input buffer and returns where the caller writes its bytes.
export function prepare(length: i32): usize {
  input = new Uint8Array(length);
  return input.dataStart;
}

// parseConfig on the input: 0 when accepted, else the error string's address.
export function configError(): usize {
  const result = parseConfig(input);
  lastError = result.error;
  if (result.config == null) return changetype<usize>(lastError);
  return 0;
}

const PATHS: string[] = ["", "a", "a.b", "user.id", "0", "a.0", "items.1.sku", "x.y.z", "a..b", "."];

// 0 when the input is valid JSON and every path edit of it is valid JSON again; 1 when the input is
// not JSON; 2 when an edit produced invalid JSON; 3 when the parser and the scanner disagree.
export function jsonProbe(): i32 {
  const text = decodeUtf8(input);
  if (text != null) jsonQuote(<string>text);
  const parsed = parseJson(input);
  const scanned = scanJson(input);
  // The tree parser (configuration) and the scanner (request bodies) must agree on validity.
  if ((parsed.value == null) != (scanned == null)) return 3;
  if (scanned == null) return 1;
  const root = <JsonSpan>scanned;
  for (let i = 0; i < PATHS.length; i++) {
    const found = findJsonPath(input, root, PATHS[i]);
    if (found != null && (<JsonSpan>found).kind == JsonKind.String) jsonStringText(input, <JsonSpan>found);
    const edited = setJsonPath(input, root, PATHS[i], '{"k":"\\u00e9"}');
    if (edited != null && scanJson(<Uint8Array>edited) == null) return 2;
  }
  return 0;
}

// Drops the globals' references and runs the cycle collector, so that only leaks stay allocated.
export function reset(): void {
  input = new Uint8Array(0);
  lastError = "";
  __collect();
}
