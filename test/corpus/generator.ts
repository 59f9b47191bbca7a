// The seeded input generator of the bad-input campaigns (RELIABILITY.md, "bad input"), and the corpus:
// test/corpus/<target>/* holds inputs that once broke something, replayed by every run before the
// generated ones. A campaign's case count depends only on its seed and its size, so the table in
// RELIABILITY.md stays the same from run to run; CAMPAIGN_SEED replays another seed.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { LONG_CAMPAIGN } from "../reliability/record.ts";

export const CAMPAIGN_SEED = Number(process.env.CAMPAIGN_SEED ?? 20261202);

/** The short size (always run) or, with KVM_LONG=1, the long one. */
export function campaignSize(short: number, long: number): number {
  return LONG_CAMPAIGN ? long : short;
}

/** mulberry32: small, fast and good enough to spread inputs; the same seed gives the same inputs. */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Gen {
  readonly random: () => number;

  constructor(seed: number) {
    this.random = rng(seed);
  }

  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  /** True with probability 1/n. */
  oneIn(n: number): boolean {
    return this.int(n) === 0;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** Printable ASCII. */
  ascii(n: number): string {
    return Array.from({ length: n }, () => String.fromCharCode(32 + this.int(95))).join("");
  }

  /** Letters, digits and "-": a token HTTP accepts as a header name. */
  token(n: number): string {
    const chars = "abcdefghijklmnopqrstuvwxyz0123456789-";
    return Array.from({ length: Math.max(1, n) }, () => this.pick([...chars])).join("");
  }

  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)));
  }

  /** UTF-8 that is not: lone continuation bytes, overlong forms, surrogates, truncated sequences. */
  invalidUtf8(): Buffer {
    return this.pick([
      Buffer.from([0x80]),
      Buffer.from([0xc0, 0xaf]),
      Buffer.from([0xe0, 0x80, 0xaf]),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from([0xf4, 0x90, 0x80, 0x80]),
      Buffer.from([0xf0, 0x9f, 0x98]),
      Buffer.from([0xff, 0xfe]),
    ]);
  }

  /** Percent-encoding a decoder must refuse or keep as text. */
  badPercent(): string {
    return this.pick([
      "%",
      "%F",
      "%zz",
      "%%",
      "%G0",
      "%C0%AF",
      "%ED%A0%80",
      "%FF%FE",
      "%00",
      "%2F",
      "%5C",
      "%u0041",
    ]);
  }

  /** A JSON-ish document: valid, deep, truncated, with lone surrogates or raw invalid UTF-8. */
  jsonish(): Buffer {
    switch (this.int(10)) {
      case 0:
        return Buffer.from(JSON.stringify({ plan: this.ascii(this.int(20)), order: { id: this.ascii(10) } }));
      case 1:
        return Buffer.from("[".repeat(this.int(20000)) + "]".repeat(this.int(20000)));
      case 2:
        return Buffer.from('{"order":' + '{"a":'.repeat(this.int(3000)) + '"x"');
      case 3:
        return Buffer.from('{"plan":"\\ud800","order":{"id":"\\udfff' + this.ascii(3) + '"}}');
      case 4:
        return Buffer.concat([Buffer.from('{"plan":"'), this.invalidUtf8(), Buffer.from('"}')]);
      case 5:
        return Buffer.from('{"plan":1e999,"order":{"id":-0}}');
      case 6:
        return this.bytes(this.int(400));
      case 7:
        return Buffer.from('{"plan":"' + "\\u0000".repeat(this.int(100)) + '","plan":"dup"}');
      case 8: // a value around a size limit
        return Buffer.from(
          JSON.stringify({ contact: { email: "e".repeat(this.pick([100, 5000, 70_000])) } }),
        );
      default:
        return Buffer.from(this.ascii(this.int(80)));
    }
  }
}

export interface CorpusInput {
  /** The file name: what the input is and what it once broke. */
  name: string;
  bytes: Buffer;
}

/** The inputs of test/corpus/<target>/, in name order. */
export function readCorpus(target: string): CorpusInput[] {
  const dir = fileURLToPath(new URL(`./${target}/`, import.meta.url));
  return readdirSync(dir)
    .filter((name) => !name.startsWith("."))
    .sort()
    .map((name) => ({ name, bytes: readFileSync(`${dir}${name}`) }));
}

/**
 * Writes an input that failed to build/campaign-failures/<target>/<name>, so that it can be replayed and,
 * once fixed, moved into test/corpus/<target>/ with a name saying what it broke.
 */
export function keepFailure(target: string, name: string, bytes: Buffer): string {
  const dir = fileURLToPath(new URL(`../../build/campaign-failures/${target}/`, import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}${name.replace(/[^A-Za-z0-9.-]+/g, "_")}`;
  writeFileSync(file, bytes);
  return file;
}
