import { decodeQueryComponent, encodeQueryComponent, getQueryParam, setQueryParam } from "../query";

function bytes(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}
function text(b: Uint8Array | null): string {
  if (b === null) return "<null>";
  return String.UTF8.decode(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

describe("decodeQueryComponent", () => {
  it("decodes percent escapes and plus", () => {
    const b = bytes("a+b%20c%2Bd");
    expect(text(decodeQueryComponent(b, 0, b.length))).toBe("a b c+d");
  });
  it("keeps malformed and truncated escapes as they are", () => {
    const b = bytes("%zz%4%");
    expect(text(decodeQueryComponent(b, 0, b.length))).toBe("%zz%4%");
  });
  it("decodes to arbitrary bytes", () => {
    const b = bytes("%FF%00");
    const d = decodeQueryComponent(b, 0, b.length);
    expect(d.length).toBe(2);
    expect(d[0]).toBe(0xff);
    expect(d[1]).toBe(0);
  });
});

describe("encodeQueryComponent", () => {
  it("escapes everything outside the unreserved set", () => {
    expect(text(encodeQueryComponent(bytes("a b&c=d/é~")))).toBe("a%20b%26c%3Dd%2F%C3%A9~");
  });
});

describe("getQueryParam", () => {
  it("finds a decoded parameter", () => {
    expect(text(getQueryParam(bytes("/p?a=1&user%20id=j+doe&b"), bytes("user id")))).toBe("j doe");
  });
  it("first occurrence wins; bare names have empty values", () => {
    expect(text(getQueryParam(bytes("/p?a=1&a=2"), bytes("a")))).toBe("1");
    expect(text(getQueryParam(bytes("/p?flag&x=1"), bytes("flag")))).toBe("");
  });
  it("is null when absent, without a query, or only in the fragment", () => {
    expect(getQueryParam(bytes("/p?a=1"), bytes("b"))).toBeNull();
    expect(getQueryParam(bytes("/p"), bytes("a"))).toBeNull();
    expect(getQueryParam(bytes("/p?x=1#a=2"), bytes("a"))).toBeNull();
    expect(getQueryParam(bytes("/p?&&"), bytes("a"))).toBeNull();
  });
});

describe("setQueryParam", () => {
  it("appends to a path without a query", () => {
    expect(text(setQueryParam(bytes("/p"), bytes("k"), bytes("a b")))).toBe("/p?k=a%20b");
  });
  it("replaces the first occurrence in place and drops duplicates", () => {
    expect(text(setQueryParam(bytes("/p?x=1&k=old&y=2&k=again"), bytes("k"), bytes("new")))).toBe(
      "/p?x=1&k=new&y=2",
    );
  });
  it("appends when the name is not there and keeps the fragment", () => {
    expect(text(setQueryParam(bytes("/p?x=1#frag"), bytes("k"), bytes("v")))).toBe("/p?x=1&k=v#frag");
  });
});
