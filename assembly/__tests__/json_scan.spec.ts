import { JsonKind, parseJson } from "../json";
import { JsonSpan, findJsonPath, jsonStringText, scanJson, setJsonPath } from "../json_scan";
import { decodeUtf8, encodeUtf8 } from "../utf8";

function bytes(s: string): Uint8Array {
  return encodeUtf8(s);
}

function root(text: string): JsonSpan {
  const span = scanJson(bytes(text));
  expect(span).not.toBeNull("not JSON: " + text);
  return <JsonSpan>span;
}

// The text at `path`: a string's unescaped text, any other value's JSON text; "<none>" when absent.
function get(text: string, path: string): string {
  const doc = bytes(text);
  const found = findJsonPath(doc, root(text), path);
  if (found === null) return "<none>";
  if (found.kind == JsonKind.String) return jsonStringText(doc, found);
  return decodeUtf8(doc.subarray(found.start, found.end))!;
}

function setPath(text: string, path: string, valueJson: string): string | null {
  const doc = bytes(text);
  const out = setJsonPath(doc, root(text), path, valueJson);
  if (out === null) return null;
  return decodeUtf8(out);
}

// The scanner must accept exactly what the tree parser (json.ts, used for the configuration)
// accepts, with the same root span and kind.
const DOCUMENTS: string[] = [
  "{}",
  "[]",
  ' {"a": 1} ',
  '{"a":{"b":"x","c":[1,2,{"d":null}]},"a":{"b":"last"}}',
  '{"user":{"id":"u\\u00e9\\"1","plan":"gold"},"pad":"ppp"}',
  '{"k\\u0061y":true,"n":-0.5e+3}',
  "[1,2,3]",
  '"just a string"',
  "12",
  "-0",
  "true",
  "null",
  '{"a":1,}',
  '{"a" 1}',
  "[1,]",
  "01",
  "1.",
  "-",
  "1e",
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
  '{"a":1 "b":2}',
  "{,}",
  "[1 2]",
];

describe("scanJson", () => {
  it("agrees with the tree parser on validity, root span and kind", () => {
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

  it("rejects invalid UTF-8", () => {
    const doc = new Uint8Array(5);
    doc[0] = 0x22;
    doc[1] = 0xc3;
    doc[2] = 0x28;
    doc[3] = 0x22;
    expect(scanJson(doc.subarray(0, 4))).toBeNull();
  });
});

describe("findJsonPath", () => {
  it("follows object members and array indexes", () => {
    const doc = '{"user": {"id": "u1", "tags": ["a", {"k": 7}]}, "1": "one", "e": "a\\"b\\u00e9"}';
    expect(get(doc, "user.id")).toBe("u1");
    expect(get(doc, "user.tags.1.k")).toBe("7");
    expect(get(doc, "user.tags")).toBe('["a", {"k": 7}]');
    expect(get(doc, "1")).toBe("one");
    expect(get(doc, "e")).toBe('a"bé');
    expect(get(doc, "")).toBe(doc);
  });

  it("reads the member JSON.parse would read when keys repeat, and escaped keys", () => {
    expect(get('{"k":1,"k":2}', "k")).toBe("2");
    expect(get('{"k\\u0061y":true}', "kay")).toBe("true");
  });

  it("returns null for missing, out-of-range, empty or scalar-crossing steps", () => {
    const doc = '{"user": {"id": "u1", "tags": ["a"]}}';
    expect(get(doc, "user.name")).toBe("<none>");
    expect(get(doc, "user.tags.1")).toBe("<none>");
    expect(get(doc, "user.tags.x")).toBe("<none>");
    expect(get(doc, "user.tags.-1")).toBe("<none>");
    expect(get(doc, "user.id.x")).toBe("<none>");
    expect(get(doc, "user..id")).toBe("<none>");
    expect(get(doc, "user.")).toBe("<none>");
  });
});

describe("setJsonPath", () => {
  it("replaces an existing value and leaves every other byte as it was", () => {
    expect(setPath('{ "a" : 1 ,\n "b":[true] }', "a", '"x"')).toBe('{ "a" : "x" ,\n "b":[true] }');
    expect(setPath('{"a":{"b":  {"c":1}  }}', "a.b", "2")).toBe('{"a":{"b":  2  }}');
    expect(setPath('{"l":[1,{"k":2}]}', "l.1.k", "null")).toBe('{"l":[1,{"k":null}]}');
  });

  it("replaces the value JSON.parse would read when keys repeat", () => {
    expect(setPath('{"k":1,"k":2}', "k", "3")).toBe('{"k":1,"k":3}');
  });

  it("inserts a missing member after the last one", () => {
    expect(setPath('{"a":1 }', "b", "2")).toBe('{"a":1,"b":2 }');
    expect(setPath("{}", "b", '"v"')).toBe('{"b":"v"}');
    expect(setPath("{ }", "b", "2")).toBe('{"b":2 }');
  });

  it("creates nested objects below the deepest existing object", () => {
    expect(setPath('{"user":{"id":1}}', "user.profile.name", '"n"')).toBe(
      '{"user":{"id":1,"profile":{"name":"n"}}}',
    );
    expect(setPath("{}", "a.b.c", "1")).toBe('{"a":{"b":{"c":1}}}');
    expect(setPath("{}", 'we"ird', "1")).toBe('{"we\\"ird":1}');
  });

  it("refuses paths through scalars, missing array elements and non-object roots", () => {
    expect(setPath('{"a":1}', "a.b", "2")).toBeNull();
    expect(setPath('{"l":[1]}', "l.1", "2")).toBeNull();
    expect(setPath('{"l":[1]}', "l.x", "2")).toBeNull();
    expect(setPath('{"a":1}', "a..b", "2")).toBeNull();
    expect(setPath("[1]", "0", "2")).toBeNull();
    expect(setPath('"s"', "a", "2")).toBeNull();
  });

  it("replaces the whole document for the empty path", () => {
    expect(setPath(' {"a":1} ', "", '{"b":2}')).toBe(' {"b":2} ');
  });

  it("keeps multi-byte text around the edit intact", () => {
    expect(setPath('{"é":"😀","x":1}', "x", '"ü"')).toBe('{"é":"😀","x":"ü"}');
  });
});
