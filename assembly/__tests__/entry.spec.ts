import { decodeEntry, encodeEntry, expiryFor, ENTRY_HEADER_BYTES } from "../entry";

describe("local entry encoding", () => {
  it("round-trips expiry and payload", () => {
    const payload = String.UTF8.encode("30s");
    const stored = encodeEntry(1234567890123, payload);
    expect(stored.byteLength).toBe(ENTRY_HEADER_BYTES + 3);
    const entry = decodeEntry(stored);
    expect(entry).not.toBeNull();
    expect(entry!.expiresAtMs).toBe(1234567890123);
    expect(String.UTF8.decode(entry!.payload)).toBe("30s");
  });
  it("keeps an empty payload distinct from a deleted entry", () => {
    const entry = decodeEntry(encodeEntry(0, new ArrayBuffer(0)));
    expect(entry).not.toBeNull();
    expect(entry!.payload.byteLength).toBe(0);
    expect(decodeEntry(new ArrayBuffer(0))).toBeNull();
  });
  it("reads foreign or truncated values as absent", () => {
    const foreign = String.UTF8.encode("hello world, not ours");
    expect(decodeEntry(foreign)).toBeNull();
    expect(decodeEntry(new ArrayBuffer(5))).toBeNull();
  });
  it("is live before its expiry and not at or after it", () => {
    const entry = decodeEntry(encodeEntry(1000, new ArrayBuffer(1)))!;
    expect(entry.isLiveAt(999)).toBe(true);
    expect(entry.isLiveAt(1000)).toBe(false);
    expect(decodeEntry(encodeEntry(0, new ArrayBuffer(1)))!.isLiveAt(u64.MAX_VALUE)).toBe(true);
  });
});

describe("expiryFor", () => {
  it("is 0 (never) for ttl 0 and now + ttl otherwise", () => {
    expect(expiryFor(5000, 0)).toBe(0);
    expect(expiryFor(5000, 2)).toBe(7000);
  });
  it("saturates instead of wrapping", () => {
    expect(expiryFor(u64.MAX_VALUE - 10, 1)).toBe(u64.MAX_VALUE);
  });
});
