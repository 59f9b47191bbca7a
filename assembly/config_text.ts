// Text rules of the configuration check (assembly/config.ts): the shapes names and values must
// have, and how a field's place is written in a message. Pure functions on strings.
import { isAsciiUpper, isHeaderValueControl, isJsonWhitespace, isNameChar, isVisibleAscii } from "./chars";
import { JsonKind, JsonValue, jsonQuote } from "./json";

function isPlainKey(key: string): bool {
  if (key.length == 0) return false;
  for (let i = 0; i < key.length; i++) {
    if (!isNameChar(key.charCodeAt(i), false)) return false;
  }
  return true;
}

// `prefix.key`, or `prefix["odd key"]` when the key is not a plain identifier, so a message stays
// on one line and names the field unambiguously. (No `?:` here: AssemblyScript 0.17 releases the
// result of `cond ? key : prefix + "." + key` once too often when it is the parameter.)
export function memberPath(prefix: string, key: string): string {
  if (!isPlainKey(key)) return prefix + "[" + jsonQuote(key) + "]";
  if (prefix.length == 0) return key;
  return prefix + "." + key;
}

export function isPrintableAscii(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    if (!isVisibleAscii(s.charCodeAt(i))) return false;
  }
  return true;
}

// Whether `s` carries what a header value may not (see chars.ts isHeaderValueControl); the
// filter's run-time check in request.ts is the same on the UTF-8 bytes.
export function hasControlCharacter(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    if (isHeaderValueControl(s.charCodeAt(i))) return true;
  }
  return false;
}

// Header names reach here validated as token characters, so ASCII lower-casing is complete.
export function asciiLower(s: string): string {
  const parts = new Array<string>(s.length);
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (isAsciiUpper(c)) c += 0x20;
    parts[i] = String.fromCharCode(c);
  }
  return parts.join("");
}

export function isBodyPath(s: string): bool {
  if (s.length == 0) return true; // the whole body
  const segments = s.split(".");
  for (let i = 0; i < segments.length; i++) {
    if (segments[i].length == 0) return false;
  }
  return true;
}

export function isKvmName(s: string, minLength: i32, maxLength: i32): bool {
  if (s.length < minLength || s.length > maxLength) return false;
  for (let i = 0; i < s.length; i++) {
    if (!isNameChar(s.charCodeAt(i), true)) return false;
  }
  return true;
}

export function isWhitespaceOnly(text: Uint8Array): bool {
  for (let i = 0; i < text.length; i++) {
    if (!isJsonWhitespace(text[i])) return false;
  }
  return true;
}

// The text of a string value, "" for any other JSON type (then no enum name matches). Written out
// rather than as `cond ? value.stringValue : ""`: AssemblyScript 0.17 miscounts references in
// ternaries mixing a field read and a literal (rtrace shows a leak, and a double free when one
// branch is a parameter).
export function textOf(value: JsonValue): string {
  if (value.kind != JsonKind.String) return "";
  return value.stringValue;
}

// Whether member `index` is the last one with its key: with a repeated key only the last counts, as
// with JSON.parse (and so with the schema).
export function isLastOccurrence(object: JsonValue, index: i32): bool {
  const key = object.keys[index];
  for (let j = index + 1; j < object.keys.length; j++) {
    if (object.keys[j] == key) return false;
  }
  return true;
}

// "must be one of a, b, c" for an enum's values.
export function oneOf(values: string[]): string {
  return "must be one of " + values.join(", ");
}
