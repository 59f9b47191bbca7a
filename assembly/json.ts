// A JSON (RFC 8259) parser that builds a tree (JsonValue), for the plugin configuration, and
// jsonQuote, which writes a string as a JSON literal. Request bodies are not parsed here: json_scan.ts
// validates them, finds a dotted path and edits it in place without building a tree. The parser
// never traps (a trap kills the worker's VM inside Envoy): every read is bounds checked, nesting is
// limited, and every malformed input becomes a JsonParseResult with an offset and a message.

import { decodeUtf8Into, firstInvalidUtf8 } from "./utf8";
import {
  hexDigitValue,
  isAsciiDigit,
  isHighSurrogate,
  isJsonSimpleEscape,
  isJsonWhitespace,
  isLowSurrogate,
} from "./chars";
import { MAX_JSON_DEPTH } from "./limits";

export enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  // Byte span [start, end) of this value in the parsed source.
  start: i32 = 0;
  end: i32 = 0;
  boolValue: bool = false;
  numberValue: f64 = 0;
  stringValue: string = "";
  items: JsonValue[] = []; // Array
  // Object members in source order, duplicates included.
  keys: string[] = [];
  values: JsonValue[] = [];

  constructor(kind: JsonKind, start: i32) {
    this.kind = kind;
    this.start = start;
  }

  // The member named `key`; with duplicate keys the last one wins, as with JSON.parse.
  get(key: string): JsonValue | null {
    if (this.kind != JsonKind.Object) return null;
    let found = -1;
    for (let i = this.keys.length - 1; i >= 0 && found < 0; i--) {
      if (this.keys[i] == key) found = i;
    }
    if (found < 0) return null;
    return this.values[found];
  }
}

export class JsonParseResult {
  constructor(
    public value: JsonValue | null,
    public errorOffset: i32,
    public errorMessage: string,
  ) {}
}

const CHAR_TAB: u32 = 0x09;
const CHAR_LF: u32 = 0x0a;
const CHAR_CR: u32 = 0x0d;
const CHAR_QUOTE: u32 = 0x22;
const CHAR_PLUS: u32 = 0x2b;
const CHAR_COMMA: u32 = 0x2c;
const CHAR_MINUS: u32 = 0x2d;
const CHAR_DOT: u32 = 0x2e;
const CHAR_0: u32 = 0x30;
const CHAR_9: u32 = 0x39;
const CHAR_COLON: u32 = 0x3a;
const CHAR_OPEN_BRACKET: u32 = 0x5b;
const CHAR_BACKSLASH: u32 = 0x5c;
const CHAR_CLOSE_BRACKET: u32 = 0x5d;
const CHAR_OPEN_BRACE: u32 = 0x7b;
const CHAR_CLOSE_BRACE: u32 = 0x7d;

class Parser {
  pos: i32 = 0;
  errorOffset: i32 = -1;
  errorMessage: string = "";

  constructor(public bytes: Uint8Array) {}

  fail(offset: i32, message: string): JsonValue | null {
    if (this.errorOffset < 0) {
      this.errorOffset = offset;
      this.errorMessage = message;
    }
    return null;
  }

  // The byte at `i`, or -1 past the end (so callers never read out of bounds).
  at(i: i32): i32 {
    if (i < 0 || i >= this.bytes.length) return -1;
    return <i32>unchecked(this.bytes[i]);
  }

  skipWhitespace(): void {
    const n = this.bytes.length;
    while (this.pos < n) {
      if (!isJsonWhitespace(<i32>unchecked(this.bytes[this.pos]))) break;
      this.pos++;
    }
  }

  unexpected(): JsonValue | null {
    if (this.pos >= this.bytes.length) return this.fail(this.pos, "unexpected end of input");
    return this.fail(this.pos, "unexpected character " + describeByte(this.at(this.pos)));
  }

  parseValue(depth: i32): JsonValue | null {
    this.skipWhitespace();
    const c = this.at(this.pos);
    if (c == <i32>CHAR_OPEN_BRACE || c == <i32>CHAR_OPEN_BRACKET) {
      if (depth >= MAX_JSON_DEPTH) {
        return this.fail(this.pos, "nesting deeper than " + MAX_JSON_DEPTH.toString() + " levels");
      }
      if (c == <i32>CHAR_OPEN_BRACE) return this.parseObject(depth + 1);
      return this.parseArray(depth + 1);
    }
    if (c == <i32>CHAR_QUOTE) {
      const start = this.pos;
      const s = this.parseString();
      if (s == null) return null;
      const v = new JsonValue(JsonKind.String, start);
      v.stringValue = <string>s;
      v.end = this.pos;
      return v;
    }
    if (c == <i32>CHAR_MINUS || (c >= <i32>CHAR_0 && c <= <i32>CHAR_9)) return this.parseNumber();
    if (this.matchLiteral("true")) return this.literal(JsonKind.Bool, true, 4);
    if (this.matchLiteral("false")) return this.literal(JsonKind.Bool, false, 5);
    if (this.matchLiteral("null")) return this.literal(JsonKind.Null, false, 4);
    return this.unexpected();
  }

  matchLiteral(word: string): bool {
    for (let i = 0; i < word.length; i++) {
      if (this.at(this.pos + i) != word.charCodeAt(i)) return false;
    }
    return true;
  }

  literal(kind: JsonKind, value: bool, length: i32): JsonValue {
    const v = new JsonValue(kind, this.pos);
    v.boolValue = value;
    this.pos += length;
    v.end = this.pos;
    return v;
  }

  parseObject(depth: i32): JsonValue | null {
    const v = new JsonValue(JsonKind.Object, this.pos);
    this.pos++; // {
    this.skipWhitespace();
    if (this.at(this.pos) == <i32>CHAR_CLOSE_BRACE) {
      this.pos++;
      v.end = this.pos;
      return v;
    }
    while (this.errorOffset < 0) {
      if (!this.parseMember(v, depth)) return null;
      this.skipWhitespace();
      const c = this.at(this.pos);
      if (c == <i32>CHAR_CLOSE_BRACE) {
        this.pos++;
        v.end = this.pos;
        return v;
      }
      if (c != <i32>CHAR_COMMA) {
        if (c < 0) return this.unexpected();
        return this.fail(this.pos, "expected ',' or '}' in an object");
      }
      this.pos++;
    }
    return null;
  }

  // `"key": value`, appended to `object`.
  parseMember(object: JsonValue, depth: i32): bool {
    this.skipWhitespace();
    if (this.at(this.pos) != <i32>CHAR_QUOTE) {
      if (this.pos >= this.bytes.length) this.unexpected();
      else this.fail(this.pos, "expected a string key");
      return false;
    }
    const key = this.parseString();
    if (key == null) return false;
    this.skipWhitespace();
    if (this.at(this.pos) != <i32>CHAR_COLON) {
      if (this.pos >= this.bytes.length) this.unexpected();
      else this.fail(this.pos, "expected ':' after an object key");
      return false;
    }
    this.pos++;
    const member = this.parseValue(depth);
    if (member == null) return false;
    object.keys.push(<string>key);
    object.values.push(member);
    return true;
  }

  parseArray(depth: i32): JsonValue | null {
    const v = new JsonValue(JsonKind.Array, this.pos);
    this.pos++; // [
    this.skipWhitespace();
    if (this.at(this.pos) == <i32>CHAR_CLOSE_BRACKET) {
      this.pos++;
      v.end = this.pos;
      return v;
    }
    while (this.errorOffset < 0) {
      if (!this.parseItem(v, depth)) return null;
      this.skipWhitespace();
      const c = this.at(this.pos);
      if (c == <i32>CHAR_CLOSE_BRACKET) {
        this.pos++;
        v.end = this.pos;
        return v;
      }
      if (c != <i32>CHAR_COMMA) {
        if (c < 0) return this.unexpected();
        return this.fail(this.pos, "expected ',' or ']' in an array");
      }
      this.pos++;
    }
    return null;
  }

  parseItem(array: JsonValue, depth: i32): bool {
    const item = this.parseValue(depth);
    if (item == null) return false;
    array.items.push(item);
    return true;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  parseNumber(): JsonValue | null {
    const start = this.pos;
    if (this.at(this.pos) == <i32>CHAR_MINUS) this.pos++;
    const first = this.at(this.pos);
    if (first == <i32>CHAR_0) {
      this.pos++;
      if (isAsciiDigit(this.at(this.pos))) return this.fail(this.pos, "leading zero in a number");
    } else if (isAsciiDigit(first)) {
      while (isAsciiDigit(this.at(this.pos))) this.pos++;
    } else {
      return this.fail(this.pos, "invalid number");
    }
    if (this.at(this.pos) == <i32>CHAR_DOT) {
      this.pos++;
      if (!isAsciiDigit(this.at(this.pos))) return this.fail(this.pos, "invalid number");
      while (isAsciiDigit(this.at(this.pos))) this.pos++;
    }
    const e = this.at(this.pos);
    if (e == 0x65 || e == 0x45) {
      this.pos++;
      const sign = this.at(this.pos);
      if (sign == <i32>CHAR_PLUS || sign == <i32>CHAR_MINUS) this.pos++;
      if (!isAsciiDigit(this.at(this.pos))) return this.fail(this.pos, "invalid number");
      while (isAsciiDigit(this.at(this.pos))) this.pos++;
    }
    const v = new JsonValue(JsonKind.Number, start);
    v.end = this.pos;
    v.numberValue = parseFloat(asciiText(this.bytes, start, this.pos));
    return v;
  }

  // Parses the string starting at the opening quote at `pos`; null (with the error set) when it is
  // malformed. The input was validated as UTF-8 before parsing started.
  parseString(): string | null {
    const open = this.pos;
    const n = this.bytes.length;
    // First pass: find the closing quote and check escapes and control characters.
    let i = open + 1;
    let escaped = false;
    while (true) {
      if (i >= n) return this.failString(i, "unterminated string");
      const c = <u32>unchecked(this.bytes[i]);
      if (c == CHAR_QUOTE) break;
      if (c < 0x20) return this.failString(i, "control character in a string");
      if (c == CHAR_BACKSLASH) {
        escaped = true;
        const e = this.at(i + 1);
        if (e == 0x75) {
          // \uXXXX: any code unit, lone surrogates included (RFC 8259 §8.2 allows them).
          for (let k = 2; k < 6; k++) {
            if (hexDigitValue(this.at(i + k)) < 0) return this.failString(i, "invalid \\u escape");
          }
          i += 6;
          continue;
        }
        if (!isJsonSimpleEscape(e)) {
          if (e < 0) return this.failString(i + 1, "unterminated string");
          return this.failString(i, "invalid escape");
        }
        i += 2;
        continue;
      }
      i++;
    }
    const close = i;
    this.pos = close + 1;
    if (!escaped) return utf8Slice(this.bytes, open + 1, close);
    return unescapeSlice(this.bytes, open + 1, close);
  }

  failString(offset: i32, message: string): string | null {
    this.fail(offset, message);
    return null;
  }
}

function describeByte(c: i32): string {
  if (c >= 0x21 && c <= 0x7e) return "'" + String.fromCharCode(c) + "'";
  if (c < 16) return "0x0" + c.toString(16);
  return "0x" + c.toString(16);
}

function asciiText(bytes: Uint8Array, start: i32, end: i32): string {
  const units = new Uint16Array(end - start);
  for (let i = start; i < end; i++) units[i - start] = <u16>bytes[i];
  return String.UTF16.decode(units.buffer);
}

function unitsToString(out: Uint16Array, count: i32): string {
  if (count <= 0) return "";
  return String.UTF16.decode(out.buffer.slice(0, count << 1));
}

function utf8Slice(bytes: Uint8Array, start: i32, end: i32): string {
  // A UTF-8 sequence of n bytes never decodes to more than n UTF-16 code units.
  const out = new Uint16Array(end - start);
  return unitsToString(out, decodeUtf8Into(bytes, start, end, out, 0));
}

function unescapeSlice(bytes: Uint8Array, start: i32, end: i32): string {
  const out = new Uint16Array(end - start); // every escape is longer than what it stands for
  let o = 0;
  let i = start;
  let run = start;
  while (i < end) {
    if (<u32>bytes[i] != CHAR_BACKSLASH) {
      i++;
      continue;
    }
    o = decodeUtf8Into(bytes, run, i, out, o);
    const e = <i32>bytes[i + 1];
    if (e == 0x75) {
      let unit = 0;
      for (let k = 2; k < 6; k++) unit = (unit << 4) | hexDigitValue(<i32>bytes[i + k]);
      out[o++] = <u16>unit;
      i += 6;
    } else {
      out[o++] = <u16>escapedChar(e);
      i += 2;
    }
    run = i;
  }
  o = decodeUtf8Into(bytes, run, end, out, o);
  return unitsToString(out, o);
}

function escapedChar(e: i32): i32 {
  if (e == 0x62) return 0x08;
  if (e == 0x66) return 0x0c;
  if (e == 0x6e) return 0x0a;
  if (e == 0x72) return 0x0d;
  if (e == 0x74) return 0x09;
  return e; // " \ /
}

// Parses one JSON document: optional whitespace, a value, optional whitespace, nothing else.
export function parseJson(bytes: Uint8Array): JsonParseResult {
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) return new JsonParseResult(null, bad, "invalid UTF-8");
  const parser = new Parser(bytes);
  const value = parser.parseValue(0);
  if (value == null) return new JsonParseResult(null, parser.errorOffset, parser.errorMessage);
  parser.skipWhitespace();
  if (parser.pos < bytes.length) {
    return new JsonParseResult(null, parser.pos, "unexpected data after the JSON value");
  }
  return new JsonParseResult(value, -1, "");
}

function hexDigit(v: u32): string {
  if (v < 10) return String.fromCharCode(0x30 + v);
  return String.fromCharCode(0x61 + v - 10);
}

function unicodeEscape(c: u32): string {
  return (
    "\\u" + hexDigit((c >> 12) & 15) + hexDigit((c >> 8) & 15) + hexDigit((c >> 4) & 15) + hexDigit(c & 15)
  );
}

// `s` as a JSON string literal. Lone surrogates are written as \u escapes so the text stays valid
// UTF-8 while JSON.parse still gives back the same code units.
export function jsonQuote(s: string): string {
  const parts = new Array<string>();
  parts.push('"');
  let run = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = <u32>s.charCodeAt(i);
    let escape: string | null = null;
    if (c == CHAR_QUOTE) escape = '\\"';
    else if (c == CHAR_BACKSLASH) escape = "\\\\";
    else if (c == CHAR_LF) escape = "\\n";
    else if (c == CHAR_CR) escape = "\\r";
    else if (c == CHAR_TAB) escape = "\\t";
    else if (c == 0x08) escape = "\\b";
    else if (c == 0x0c) escape = "\\f";
    else if (c < 0x20) escape = unicodeEscape(c);
    else if (isHighSurrogate(c)) {
      const next = i + 1 < n ? <u32>s.charCodeAt(i + 1) : 0;
      if (isLowSurrogate(next)) {
        i++; // a proper pair is copied as is
        continue;
      }
      escape = unicodeEscape(c);
    } else if (isLowSurrogate(c)) escape = unicodeEscape(c);
    if (escape != null) {
      if (i > run) parts.push(s.substring(run, i));
      parts.push(<string>escape);
      run = i + 1;
    }
  }
  if (n > run) parts.push(s.substring(run, n));
  parts.push('"');
  return parts.join("");
}
