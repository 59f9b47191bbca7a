import { decodeUtf8, encodeUtf8, firstInvalidUtf8, isValidUtf8 } from "../utf8";

function bytes(values: u8[]): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i];
  return out;
}

function valid(values: u8[]): bool {
  return isValidUtf8(bytes(values));
}

describe("isValidUtf8", () => {
  it("accepts the empty input and ASCII", () => {
    expect(valid([])).toBe(true);
    expect(valid([0x00, 0x41, 0x7f])).toBe(true);
  });

  it("accepts the boundaries of each sequence length", () => {
    expect(valid([0xc2, 0x80])).toBe(true); // U+0080
    expect(valid([0xdf, 0xbf])).toBe(true); // U+07FF
    expect(valid([0xe0, 0xa0, 0x80])).toBe(true); // U+0800
    expect(valid([0xed, 0x9f, 0xbf])).toBe(true); // U+D7FF
    expect(valid([0xee, 0x80, 0x80])).toBe(true); // U+E000
    expect(valid([0xef, 0xbf, 0xbf])).toBe(true); // U+FFFF
    expect(valid([0xf0, 0x90, 0x80, 0x80])).toBe(true); // U+10000
    expect(valid([0xf4, 0x8f, 0xbf, 0xbf])).toBe(true); // U+10FFFF
  });

  it("rejects overlong forms", () => {
    expect(valid([0xc0, 0x80])).toBe(false); // NUL in two bytes
    expect(valid([0xc1, 0xbf])).toBe(false);
    expect(valid([0xe0, 0x80, 0xaf])).toBe(false); // "/" in three bytes
    expect(valid([0xe0, 0x9f, 0xbf])).toBe(false);
    expect(valid([0xf0, 0x80, 0x80, 0xaf])).toBe(false);
    expect(valid([0xf0, 0x8f, 0xbf, 0xbf])).toBe(false);
  });

  it("rejects UTF-16 surrogates encoded as UTF-8", () => {
    expect(valid([0xed, 0xa0, 0x80])).toBe(false); // U+D800
    expect(valid([0xed, 0xbf, 0xbf])).toBe(false); // U+DFFF
    expect(valid([0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80])).toBe(false); // CESU-8 pair
  });

  it("rejects code points above U+10FFFF and bytes that never occur", () => {
    expect(valid([0xf4, 0x90, 0x80, 0x80])).toBe(false);
    expect(valid([0xf5, 0x80, 0x80, 0x80])).toBe(false);
    expect(valid([0xff])).toBe(false);
    expect(valid([0xfe])).toBe(false);
  });

  it("rejects truncated sequences, also at the very end", () => {
    expect(valid([0xc2])).toBe(false);
    expect(valid([0xe2, 0x82])).toBe(false);
    expect(valid([0xf0, 0x9f, 0x98])).toBe(false);
    expect(valid([0xe2, 0x82, 0x41])).toBe(false);
    expect(valid([0x41, 0xf0, 0x9f])).toBe(false);
  });

  it("rejects stray continuation bytes", () => {
    expect(valid([0x80])).toBe(false);
    expect(valid([0x41, 0xbf, 0x41])).toBe(false);
  });

  it("reports the offset of the first bad byte", () => {
    expect(firstInvalidUtf8(bytes([0x41, 0xc3, 0xa9, 0xc0, 0x80]))).toBe(3);
    expect(firstInvalidUtf8(bytes([0x41, 0x42]))).toBe(-1);
  });
});

describe("decodeUtf8", () => {
  it("decodes every sequence length", () => {
    const text = decodeUtf8(bytes([0x41, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]));
    expect(text).toBe("Aé€😀");
    expect((<string>text).length).toBe(5); // the emoji is a surrogate pair
  });

  it("returns null, not a best-effort string, for invalid input", () => {
    expect(decodeUtf8(bytes([0x41, 0xc0, 0xaf]))).toBeNull();
    expect(decodeUtf8(bytes([0xed, 0xa0, 0x80]))).toBeNull();
    expect(decodeUtf8(bytes([0xe2, 0x82]))).toBeNull();
  });

  it("decodes the empty input and a view into a larger buffer", () => {
    expect(decodeUtf8(new Uint8Array(0))).toBe("");
    const whole = bytes([0xff, 0x68, 0x69, 0xff]);
    expect(decodeUtf8(whole.subarray(1, 3))).toBe("hi");
  });
});

describe("encodeUtf8", () => {
  it("encodes every sequence length", () => {
    const out = encodeUtf8("Aé€😀");
    expect(out.length).toBe(10);
    expect(out[1]).toBe(0xc3);
    expect(out[3]).toBe(0xe2);
    expect(out[6]).toBe(0xf0);
    expect(out[9]).toBe(0x80);
  });

  it("round-trips through decodeUtf8", () => {
    const text = "κλειδί=値 🔑";
    expect(decodeUtf8(encodeUtf8(text))).toBe(text);
  });

  it("turns lone surrogates into U+FFFD so the output stays valid", () => {
    const lone = "a" + String.fromCharCode(0xd800) + "b" + String.fromCharCode(0xdc00);
    const out = encodeUtf8(lone);
    expect(isValidUtf8(out)).toBe(true);
    expect(decodeUtf8(out)).toBe("a\uFFFDb\uFFFD");
  });
});
