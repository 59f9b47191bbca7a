// An Envoy-like header map (envoy source/common/http/header_map_impl.cc): keys are lower-cased on
// every insert, pseudo-headers (":method", ":path", …) stay in front of regular headers, values keep
// their bytes. Entries are stored as latin1 strings so every byte round-trips unchanged.

export function toLatin1(value: string | Uint8Array): string {
  return typeof value === "string"
    ? Buffer.from(value, "utf8").toString("latin1")
    : Buffer.from(value).toString("latin1");
}

export function fromLatin1(value: string): string {
  return Buffer.from(value, "latin1").toString("utf8");
}

function lowerAscii(key: string): string {
  // Envoy's LowerCaseString lowers ASCII only (absl::AsciiStrToLower).
  return key.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

export class HeaderMap {
  private entries: [string, string][] = [];

  static fromPairs(pairs: ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>): HeaderMap {
    const map = new HeaderMap();
    for (const [k, v] of pairs) map.add(toLatin1(k), toLatin1(v));
    return map;
  }

  /** Adds an entry (HeaderMapImpl::addCopy); key and value are latin1 byte strings. */
  add(key: string, value: string): void {
    const k = lowerAscii(key);
    if (k.startsWith(":")) {
      let i = 0;
      while (i < this.entries.length && this.entries[i][0].startsWith(":")) i++;
      this.entries.splice(i, 0, [k, value]);
    } else {
      this.entries.push([k, value]);
    }
  }

  /** HeaderMapImpl::setCopy: every existing entry of the key goes, one new entry is added. */
  replace(key: string, value: string): void {
    this.remove(key);
    this.add(key, value);
  }

  remove(key: string): void {
    const k = lowerAscii(key);
    this.entries = this.entries.filter(([ek]) => ek !== k);
  }

  /** First value of the key (Envoy's getHeaderMapValue returns entry[0]). */
  get(key: string): string | undefined {
    const k = lowerAscii(key);
    return this.entries.find(([ek]) => ek === k)?.[1];
  }

  /** All values joined with "," (HeaderUtility::getAllOfHeaderAsString, used by CEL request.headers). */
  getAllJoined(key: string): string | undefined {
    const k = lowerAscii(key);
    const values = this.entries.filter(([ek]) => ek === k).map(([, v]) => v);
    return values.length === 0 ? undefined : values.join(",");
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  clear(): void {
    this.entries = [];
  }

  get size(): number {
    return this.entries.length;
  }

  /** HeaderMap::byteSize: the sum of key and value lengths. */
  byteSize(): number {
    return this.entries.reduce((n, [k, v]) => n + k.length + v.length, 0);
  }

  /** Entries as latin1 byte strings. */
  rawEntries(): [string, string][] {
    return this.entries.map(([k, v]) => [k, v]);
  }

  /** Entries as UTF-8 decoded strings, for the public API. */
  toPairs(): [string, string][] {
    return this.entries.map(([k, v]) => [fromLatin1(k), fromLatin1(v)]);
  }

  clone(): HeaderMap {
    const copy = new HeaderMap();
    copy.entries = this.rawEntries();
    return copy;
  }
}
