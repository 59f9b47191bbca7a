import { jsonPathGet, jsonPathSet, parseJson } from "../json";
import { findJsonPath, jsonStringText, scanJson, setJsonPath } from "../json_scan";
import { JsonKind } from "../json";

function bytes(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}
function text(b: Uint8Array): string {
  return String.UTF8.decode(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

// The scanner must agree with the tree parser (json.ts) on what is JSON, where a path points and
// what an edit produces.
const DOCUMENTS: string[] = [
  "{}",
  "[]",
  ' {"a": 1} ',
  '{"a":{"b":"x","c":[1,2,{"d":null}]},"a":{"b":"last"}}',
  '{"user":{"id":"u\\u00e9\\"1","plan":"gold"},"pad":"ppp"}',
  '{"k\\u0061y":true,"n":-0.5e+3}',
  '{"items":[{"id":1},{"id":42}],"e":{}}',
  "[1,2,3]",
  '"just a string"',
  "12",
  "true",
  "null",
  '{"a":1,}',
  '{"a" 1}',
  "[1,]",
  "01",
  "1.",
  "-",
  '{"a":"\\x"}',
  '{"a":"\\u12"}',
  '{"a":"line\nbreak"}',
  "{} x",
  "",
  "   ",
  '{"a":[' + "[".repeat(70) + "]".repeat(70) + "]}",
  '{"a":' + "[".repeat(62) + "]".repeat(62) + "}",
  "nul",
  "tru",
  '{"a":tRue}',
];
const PATHS: string[] = ["", "a", "a.b", "a.c.2.d", "user.id", "user.plan", "key", "items.1.id", "items.5", "n", "e.x.y", "a..b", "0"];

describe("json_scan agrees with the tree parser", () => {
  it("on validity", () => {
    for (let i = 0; i < DOCUMENTS.length; i++) {
      const doc = bytes(DOCUMENTS[i]);
      const tree = parseJson(doc).value;
      const scanned = scanJson(doc);
      expect(scanned === null).toBe(tree === null, DOCUMENTS[i]);
      if (tree !== null && scanned !== null) {
        expect(scanned.start).toBe(tree.start);
        expect(scanned.end).toBe(tree.end);
        expect(<i32>scanned.kind).toBe(<i32>tree.kind);
      }
    }
  });

  it("on where each path points", () => {
    for (let i = 0; i < DOCUMENTS.length; i++) {
      const doc = bytes(DOCUMENTS[i]);
      const tree = parseJson(doc).value;
      const root = scanJson(doc);
      if (tree === null || root === null) continue;
      for (let p = 0; p < PATHS.length; p++) {
        const want = jsonPathGet(tree, PATHS[p]);
        const got = findJsonPath(doc, root, PATHS[p]);
        expect(got === null).toBe(want === null, DOCUMENTS[i] + " @ " + PATHS[p]);
        if (want !== null && got !== null) {
          expect(got.start).toBe(want.start);
          expect(got.end).toBe(want.end);
          if (want.kind == JsonKind.String) expect(jsonStringText(doc, got)).toBe(want.stringValue);
        }
      }
    }
  });

  it("on every edit", () => {
    for (let i = 0; i < DOCUMENTS.length; i++) {
      const doc = bytes(DOCUMENTS[i]);
      const tree = parseJson(doc).value;
      const root = scanJson(doc);
      if (tree === null || root === null) continue;
      for (let p = 1; p < PATHS.length; p++) {
        const want = jsonPathSet(doc, tree, PATHS[p], '"v"');
        const got = setJsonPath(doc, root, PATHS[p], '"v"');
        expect(got === null).toBe(want === null, DOCUMENTS[i] + " @ " + PATHS[p]);
        if (want !== null && got !== null) expect(text(got)).toBe(text(want));
      }
    }
  });

  it("inserts nested members and keeps every other byte", () => {
    const doc = bytes('{"a": 1,  "b":[true]}');
    const root = scanJson(doc)!;
    expect(text(setJsonPath(doc, root, "meta.x.y", '"v"')!)).toBe('{"a": 1,  "b":[true],"meta":{"x":{"y":"v"}}}');
    expect(text(setJsonPath(doc, root, "a", "[2]")!)).toBe('{"a": [2],  "b":[true]}');
  });
});
