// Request bodies: find and edit one dotted path in a JSON document without building a tree.
//
// json.ts's parseJson builds a JsonValue (plus arrays) per value, several hundred bytes each: a
// 1 MiB body of small numbers grew a worker's memory by ~300 MiB, and a handful of such requests in
// flight failed the VM at Envoy's 1 GiB cap. Here the document is validated by a scanner that
// allocates nothing per value, and only the members along the path are looked at. It accepts
// exactly what parseJson accepts (same grammar, UTF-8 check and depth limit; assembly/__tests__/
// json_scan.spec.ts compares them), so config parsing and body handling agree on what JSON is.
// test/unit/parser-memory.test.ts runs it under AssemblyScript's rtrace.
import { JsonKind, jsonQuote, parseJson } from "./json";
import { MAX_JSON_DEPTH } from "./limits";
import { hexDigitValue, isAsciiDigit, isJsonSimpleEscape, isJsonWhitespace } from "./chars";
import { encodeUtf8, isValidUtf8 } from "./utf8";

const QUOTE: i32 = 0x22;
const BACKSLASH: i32 = 0x5c;
const COMMA: i32 = 0x2c;
const COLON: i32 = 0x3a;
const OPEN_BRACE: i32 = 0x7b;
const CLOSE_BRACE: i32 = 0x7d;
const OPEN_BRACKET: i32 = 0x5b;
const CLOSE_BRACKET: i32 = 0x5d;

// A value's kind and byte span [start, end) in the document.
export class JsonSpan {
  constructor(
    public kind: JsonKind,
    public start: i32,
    public end: i32,
  ) {}
}

class Scanner {
  pos: i32 = 0;

  constructor(public bytes: Uint8Array) {}

  at(i: i32): i32 {
    if (i < 0 || i >= this.bytes.length) return -1;
    return <i32>unchecked(this.bytes[i]);
  }

  skipWhitespace(): void {
    while (true) {
      if (!isJsonWhitespace(this.at(this.pos))) return;
      this.pos++;
    }
  }

  // Skips the value at pos (after whitespace); its kind, or -1 when it is not valid JSON.
  skipValue(depth: i32): i32 {
    this.skipWhitespace();
    const c = this.at(this.pos);
    if (c == OPEN_BRACE || c == OPEN_BRACKET) {
      if (depth >= MAX_JSON_DEPTH) return -1;
      if (c == OPEN_BRACE) return this.skipObject(depth + 1) ? <i32>JsonKind.Object : -1;
      return this.skipArray(depth + 1) ? <i32>JsonKind.Array : -1;
    }
    if (c == QUOTE) return this.skipString() ? <i32>JsonKind.String : -1;
    if (c == 0x2d || isAsciiDigit(c)) return this.skipNumber() ? <i32>JsonKind.Number : -1;
    if (this.skipWord("true") || this.skipWord("false")) return <i32>JsonKind.Bool;
    if (this.skipWord("null")) return <i32>JsonKind.Null;
    return -1;
  }

  skipWord(word: string): bool {
    for (let i = 0; i < word.length; i++) {
      if (this.at(this.pos + i) != word.charCodeAt(i)) return false;
    }
    this.pos += word.length;
    return true;
  }

  skipDigits(): bool {
    if (!isAsciiDigit(this.at(this.pos))) return false;
    while (isAsciiDigit(this.at(this.pos))) this.pos++;
    return true;
  }

  skipNumber(): bool {
    if (this.at(this.pos) == 0x2d) this.pos++;
    if (this.at(this.pos) == 0x30) {
      this.pos++;
      if (isAsciiDigit(this.at(this.pos))) return false; // leading zero
    } else if (!this.skipDigits()) {
      return false;
    }
    if (this.at(this.pos) == 0x2e) {
      this.pos++;
      if (!this.skipDigits()) return false;
    }
    const e = this.at(this.pos);
    if (e == 0x65 || e == 0x45) {
      this.pos++;
      const sign = this.at(this.pos);
      if (sign == 0x2b || sign == 0x2d) this.pos++;
      if (!this.skipDigits()) return false;
    }
    return true;
  }

  // The opening quote is at pos; moves past the closing one.
  skipString(): bool {
    let i = this.pos + 1;
    while (true) {
      const c = this.at(i);
      if (c < 0) return false;
      if (c == QUOTE) break;
      if (c < 0x20) return false;
      if (c == BACKSLASH) {
        const e = this.at(i + 1);
        if (e == 0x75) {
          for (let k = 2; k < 6; k++) if (hexDigitValue(this.at(i + k)) < 0) return false;
          i += 6;
          continue;
        }
        if (!isJsonSimpleEscape(e)) return false;
        i += 2;
        continue;
      }
      i++;
    }
    this.pos = i + 1;
    return true;
  }

  skipObject(depth: i32): bool {
    this.pos++; // {
    this.skipWhitespace();
    if (this.at(this.pos) == CLOSE_BRACE) {
      this.pos++;
      return true;
    }
    while (true) {
      this.skipWhitespace();
      if (this.at(this.pos) != QUOTE || !this.skipString()) return false;
      this.skipWhitespace();
      if (this.at(this.pos) != COLON) return false;
      this.pos++;
      if (this.skipValue(depth) < 0) return false;
      this.skipWhitespace();
      const c = this.at(this.pos);
      this.pos++;
      if (c == CLOSE_BRACE) return true;
      if (c != COMMA) return false;
    }
    return false;
  }

  skipArray(depth: i32): bool {
    this.pos++; // [
    this.skipWhitespace();
    if (this.at(this.pos) == CLOSE_BRACKET) {
      this.pos++;
      return true;
    }
    while (true) {
      if (this.skipValue(depth) < 0) return false;
      this.skipWhitespace();
      const c = this.at(this.pos);
      this.pos++;
      if (c == CLOSE_BRACKET) return true;
      if (c != COMMA) return false;
    }
    return false;
  }
}

// The root value of a valid JSON document (whitespace around it allowed), or null.
export function scanJson(bytes: Uint8Array): JsonSpan | null {
  if (!isValidUtf8(bytes)) return null;
  const scanner = new Scanner(bytes);
  scanner.skipWhitespace();
  const start = scanner.pos;
  const kind = scanner.skipValue(0);
  if (kind < 0) return null;
  const end = scanner.pos;
  scanner.skipWhitespace();
  if (scanner.pos != bytes.length) return null;
  return new JsonSpan(<JsonKind>kind, start, end);
}

// The text of the string literal at span (quotes included) of a valid document.
export function jsonStringText(bytes: Uint8Array, span: JsonSpan): string {
  let escaped = false;
  for (let i = span.start + 1; i < span.end - 1; i++) {
    if (<i32>bytes[i] == BACKSLASH) {
      escaped = true;
      break;
    }
  }
  if (!escaped)
    return String.UTF8.decode(
      bytes.buffer.slice(bytes.byteOffset + span.start + 1, bytes.byteOffset + span.end - 1),
    );
  // Rare: let the full parser unescape this one literal.
  const parsed = parseJson(bytes.subarray(span.start, span.end)).value;
  if (parsed === null) return "";
  return parsed.stringValue;
}

// The bytes of a JSON string's text, as a source value: UTF-8, without quotes or escapes.
export function jsonStringBytes(bytes: Uint8Array, span: JsonSpan): ArrayBuffer {
  return encodeUtf8(jsonStringText(bytes, span)).buffer;
}

function arrayIndex(segment: string): i32 {
  if (segment.length == 0 || segment.length > 9) return -1;
  let n = 0;
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (!isAsciiDigit(c)) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

// A member lookup in the object at `object`: the value of the LAST member named `name` (as
// JSON.parse), or null; `lastMemberEnd` is where the object's last member value ends (or, for an
// empty object, just after its `{`), for inserting a member.
class MemberLookup {
  value: JsonSpan | null = null;
  lastMemberEnd: i32 = -1;
  members: i32 = 0;
}

function lookupMember(bytes: Uint8Array, object: JsonSpan, name: string): MemberLookup {
  const out = new MemberLookup();
  out.lastMemberEnd = object.start + 1;
  const nameBytes = encodeUtf8(name);
  const scanner = new Scanner(bytes);
  scanner.pos = object.start + 1;
  scanner.skipWhitespace();
  if (scanner.at(scanner.pos) == CLOSE_BRACE) return out;
  while (true) {
    scanner.skipWhitespace();
    const keyStart = scanner.pos;
    if (!scanner.skipString()) return out;
    const key = new JsonSpan(JsonKind.String, keyStart, scanner.pos);
    scanner.skipWhitespace();
    scanner.pos++; // :
    scanner.skipWhitespace();
    const valueStart = scanner.pos;
    const kind = scanner.skipValue(0);
    if (kind < 0) return out;
    out.members++;
    out.lastMemberEnd = scanner.pos;
    if (keyEquals(bytes, key, nameBytes)) out.value = new JsonSpan(<JsonKind>kind, valueStart, scanner.pos);
    scanner.skipWhitespace();
    const c = scanner.at(scanner.pos);
    scanner.pos++;
    if (c != COMMA) return out;
  }
  return out;
}

function keyEquals(bytes: Uint8Array, key: JsonSpan, name: Uint8Array): bool {
  const rawLength = key.end - key.start - 2;
  let escaped = false;
  for (let i = key.start + 1; i < key.end - 1; i++) {
    if (<i32>bytes[i] == BACKSLASH) {
      escaped = true;
      break;
    }
  }
  if (escaped) {
    const text = encodeUtf8(jsonStringText(bytes, key));
    if (text.length != name.length) return false;
    for (let i = 0; i < text.length; i++) if (text[i] != name[i]) return false;
    return true;
  }
  if (rawLength != name.length) return false;
  for (let i = 0; i < rawLength; i++) if (bytes[key.start + 1 + i] != name[i]) return false;
  return true;
}

function arrayElement(bytes: Uint8Array, array: JsonSpan, index: i32): JsonSpan | null {
  const scanner = new Scanner(bytes);
  scanner.pos = array.start + 1;
  scanner.skipWhitespace();
  if (scanner.at(scanner.pos) == CLOSE_BRACKET) return null;
  let n = 0;
  while (true) {
    scanner.skipWhitespace();
    const start = scanner.pos;
    const kind = scanner.skipValue(0);
    if (kind < 0) return null;
    if (n == index) return new JsonSpan(<JsonKind>kind, start, scanner.pos);
    n++;
    scanner.skipWhitespace();
    const c = scanner.at(scanner.pos);
    scanner.pos++;
    if (c != COMMA) return null;
  }
  return null;
}

function splitPath(path: string): string[] | null {
  const segments = path.split(".");
  for (let i = 0; i < segments.length; i++) if (segments[i].length == 0) return null;
  return segments;
}

// The value at dotted `path` ("user.id", "items.0.sku") of the valid document whose root is
// `root`; "" is the root itself. null when a step is missing or crosses a scalar.
export function findJsonPath(bytes: Uint8Array, root: JsonSpan, path: string): JsonSpan | null {
  if (path.length == 0) return root;
  const segments = splitPath(path);
  if (segments === null) return null;
  let current = root;
  for (let i = 0; i < segments.length; i++) {
    let next: JsonSpan | null = null;
    if (current.kind == JsonKind.Object) {
      next = lookupMember(bytes, current, segments[i]).value;
    } else if (current.kind == JsonKind.Array) {
      const index = arrayIndex(segments[i]);
      if (index >= 0) next = arrayElement(bytes, current, index);
    }
    if (next === null) return null;
    current = next;
  }
  return current;
}

function splice(source: Uint8Array, from: i32, to: i32, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(source.length - (to - from) + insert.length);
  out.set(source.subarray(0, from), 0);
  out.set(insert, from);
  out.set(source.subarray(to), from + insert.length);
  return out;
}

// Writes `valueJson` (serialized JSON) at dotted `path` of the valid document whose root object is
// `root`: replaces the existing value's bytes, or inserts the missing members (creating nested
// objects) after the last member of the deepest existing object, leaving every other byte as it
// was; "" replaces the root value. null when the root is not an object, the path is malformed, or
// it crosses a scalar or a missing array element.
export function setJsonPath(
  bytes: Uint8Array,
  root: JsonSpan,
  path: string,
  valueJson: string,
): Uint8Array | null {
  if (root.kind != JsonKind.Object) return null;
  if (path.length == 0) return splice(bytes, root.start, root.end, encodeUtf8(valueJson));
  const segments = splitPath(path);
  if (segments === null) return null;
  let current = root;
  for (let i = 0; i < segments.length; i++) {
    if (current.kind == JsonKind.Object) {
      const lookup = lookupMember(bytes, current, segments[i]);
      const found = lookup.value;
      if (found === null) return insertMembers(bytes, lookup, segments, i, valueJson);
      current = found;
    } else if (current.kind == JsonKind.Array) {
      const index = arrayIndex(segments[i]);
      if (index < 0) return null;
      const element = arrayElement(bytes, current, index);
      if (element === null) return null;
      current = element;
    } else {
      return null;
    }
  }
  return splice(bytes, current.start, current.end, encodeUtf8(valueJson));
}

function insertMembers(
  bytes: Uint8Array,
  lookup: MemberLookup,
  segments: string[],
  from: i32,
  valueJson: string,
): Uint8Array {
  // `"a":{"b":{"c":value}}` for the missing segments a, b, c.
  const parts = new Array<string>();
  if (lookup.members > 0) parts.push(",");
  for (let i = from; i < segments.length; i++) {
    if (i > from) parts.push("{");
    parts.push(jsonQuote(segments[i]));
    parts.push(":");
  }
  parts.push(valueJson);
  for (let i = from + 1; i < segments.length; i++) parts.push("}");
  const at = lookup.lastMemberEnd;
  return splice(bytes, at, at, encodeUtf8(parts.join("")));
}
