import { JsonKind, JsonValue, jsonQuote, parseJson } from "../json";
import { MAX_JSON_DEPTH } from "../limits";
import { encodeUtf8 } from "../utf8";

function parse(text: string): JsonValue {
  const result = parseJson(encodeUtf8(text));
  expect(result.errorMessage).toBe("", "parse error for " + text);
  return <JsonValue>result.value;
}

function errorOf(text: string): string {
  const result = parseJson(encodeUtf8(text));
  expect(result.value).toBeNull("expected an error for " + text);
  return result.errorMessage + " at byte " + result.errorOffset.toString();
}

function rawError(values: u8[]): string {
  const bytes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) bytes[i] = values[i];
  const result = parseJson(bytes);
  expect(result.value).toBeNull();
  return result.errorMessage + " at byte " + result.errorOffset.toString();
}

function repeat(s: string, n: i32): string {
  const parts = new Array<string>(n);
  for (let i = 0; i < n; i++) parts[i] = s;
  return parts.join("");
}

describe("parseJson: value types", () => {
  it("parses scalars with their spans", () => {
    const n = parse(" null ");
    expect(n.kind).toBe(JsonKind.Null);
    expect(n.start).toBe(1);
    expect(n.end).toBe(5);
    expect(parse("true").boolValue).toBe(true);
    const f = parse("false");
    expect(f.kind).toBe(JsonKind.Bool);
    expect(f.boolValue).toBe(false);
    expect(parse('"hi"').stringValue).toBe("hi");
    expect(parse('"hi"').kind).toBe(JsonKind.String);
  });

  it("parses arrays and objects in source order", () => {
    const a = parse("[1, [2], {}, []]");
    expect(a.kind).toBe(JsonKind.Array);
    expect(a.items.length).toBe(4);
    expect(a.items[1].items[0].numberValue).toBe(2);
    expect(a.items[2].kind).toBe(JsonKind.Object);
    const o = parse('{"b": 1, "a": {"c": "d"}}');
    expect(o.keys.length).toBe(2);
    expect(o.keys[0]).toBe("b");
    expect(o.keys[1]).toBe("a");
    const inner = <JsonValue>o.get("a");
    expect((<JsonValue>inner.get("c")).stringValue).toBe("d");
    expect(inner.start).toBe(14);
    expect(inner.end).toBe(24);
    expect(o.get("missing")).toBeNull();
  });

  it("lets the last duplicate key win, keeping every member", () => {
    const o = parse('{"k": 1, "k": 2}');
    expect(o.keys.length).toBe(2);
    expect((<JsonValue>o.get("k")).numberValue).toBe(2);
  });
});

describe("parseJson: numbers", () => {
  it("parses the whole number grammar", () => {
    expect(parse("0").numberValue).toBe(0);
    expect(parse("-12").numberValue).toBe(-12);
    expect(parse("3.25").numberValue).toBe(3.25);
    expect(parse("1e3").numberValue).toBe(1000);
    expect(parse("2E-2").numberValue).toBe(0.02);
    expect(parse("-1.5e+1").numberValue).toBe(-15);
    expect(parse("2147483647").numberValue).toBe(2147483647);
    expect(parse("9007199254740993").numberValue).toBe(9007199254740992);
    expect(parse("1e400").numberValue).toBe(Infinity);
  });

  it("rejects what JSON does not allow", () => {
    expect(errorOf("01")).toBe("leading zero in a number at byte 1");
    expect(errorOf("-")).toBe("invalid number at byte 1");
    expect(errorOf("1.")).toBe("invalid number at byte 2");
    expect(errorOf("1e")).toBe("invalid number at byte 2");
    expect(errorOf(".5")).toBe("unexpected character '.' at byte 0");
    expect(errorOf("+1")).toBe("unexpected character '+' at byte 0");
    expect(errorOf("NaN")).toBe("unexpected character 'N' at byte 0");
    expect(errorOf("0x10")).toBe("unexpected data after the JSON value at byte 1");
  });
});

describe("parseJson: strings", () => {
  it("decodes every escape", () => {
    expect(parse('"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t"').stringValue).toBe('a"b\\c/d\b\f\n\r\t');
    expect(parse('"\\u0041\\u00e9\\u20AC"').stringValue).toBe("Aé€");
  });

  it("joins \\u surrogate pairs and keeps lone surrogates without trapping", () => {
    expect(parse('"\\ud83d\\ude00"').stringValue).toBe("😀");
    const lone = parse('"x\\ud800y"').stringValue;
    expect(lone.length).toBe(3);
    expect(lone.charCodeAt(1)).toBe(0xd800);
    expect(parse('"\\udc00"').stringValue.charCodeAt(0)).toBe(0xdc00);
  });

  it("keeps raw UTF-8 text next to escapes", () => {
    expect(parse('"é\\n😀x"').stringValue).toBe("é\n😀x");
  });

  it("rejects bad escapes, control characters and unterminated strings", () => {
    expect(errorOf('"\\x"')).toBe("invalid escape at byte 1");
    expect(errorOf('"\\u12"')).toBe("invalid \\u escape at byte 1");
    expect(errorOf('"\\u12g4"')).toBe("invalid \\u escape at byte 1");
    expect(errorOf('"a\nb"')).toBe("control character in a string at byte 2");
    expect(errorOf('"abc')).toBe("unterminated string at byte 4");
    expect(errorOf('"\\')).toBe("unterminated string at byte 2");
  });

  it("rejects invalid UTF-8 anywhere", () => {
    expect(rawError([0x22, 0xc0, 0xaf, 0x22])).toBe("invalid UTF-8 at byte 1");
    expect(rawError([0x7b, 0x7d, 0x20, 0xff])).toBe("invalid UTF-8 at byte 3");
  });
});

describe("parseJson: structure errors", () => {
  it("names the problem and the byte", () => {
    expect(errorOf("")).toBe("unexpected end of input at byte 0");
    expect(errorOf("   ")).toBe("unexpected end of input at byte 3");
    expect(errorOf("{")).toBe("unexpected end of input at byte 1");
    expect(errorOf('{"a"')).toBe("unexpected end of input at byte 4");
    expect(errorOf('{"a" 1}')).toBe("expected ':' after an object key at byte 5");
    expect(errorOf('{"a":1,}')).toBe("expected a string key at byte 7");
    expect(errorOf("{a:1}")).toBe("expected a string key at byte 1");
    expect(errorOf('{"a":1 "b":2}')).toBe("expected ',' or '}' in an object at byte 7");
    expect(errorOf("[1 2]")).toBe("expected ',' or ']' in an array at byte 3");
    expect(errorOf("[1,]")).toBe("unexpected character ']' at byte 3");
    expect(errorOf("[")).toBe("unexpected end of input at byte 1");
    expect(errorOf("tru")).toBe("unexpected character 't' at byte 0");
    expect(errorOf("nul")).toBe("unexpected character 'n' at byte 0");
    expect(errorOf("{} x")).toBe("unexpected data after the JSON value at byte 3");
    expect(errorOf("\u0001")).toBe("unexpected character 0x01 at byte 0");
  });

  it("accepts nesting up to the limit", () => {
    const text = repeat("[", MAX_JSON_DEPTH) + repeat("]", MAX_JSON_DEPTH);
    expect(parse(text).kind).toBe(JsonKind.Array);
  });

  it("returns an error, not a trap, beyond the nesting limit", () => {
    const deep = repeat("[", MAX_JSON_DEPTH + 1) + repeat("]", MAX_JSON_DEPTH + 1);
    expect(errorOf(deep)).toBe("nesting deeper than 64 levels at byte 64");
    const huge = repeat('{"a":', 10000);
    expect(errorOf(huge)).toBe("nesting deeper than 64 levels at byte 320");
  });
});

describe("jsonQuote", () => {
  it("escapes quotes, backslashes and control characters", () => {
    expect(jsonQuote('a"b\\c\n\r\t\b\f' + String.fromCharCode(1))).toBe('"a\\"b\\\\c\\n\\r\\t\\b\\f\\u0001"');
    expect(jsonQuote("")).toBe('""');
    expect(jsonQuote("é😀/")).toBe('"é😀/"');
  });

  it("escapes lone surrogates and round-trips through the parser", () => {
    const text = "a" + String.fromCharCode(0xd800) + "b" + String.fromCharCode(0xdfff);
    const quoted = jsonQuote(text);
    expect(quoted).toBe('"a\\ud800b\\udfff"');
    expect(parse(quoted).stringValue).toBe(text);
  });
});
