// The callouts one root context has out, and the streams waiting on each (docs/filter.md, "The
// cluster cache"). Concurrent gets of the same map and key share one callout: the first dispatches
// it, later ones join, and its answer resumes every stream still waiting, in arrival order. The
// table holds stream context ids, never contexts (a context must not outlive its stream: stream_exports.ts).
// Tables are per root context, so per worker: each worker is its own VM (docs/envoy-behaviour.md §4).

export class Callout {
  constructor(
    public getKey: string, // "" for a put or delete: those are never shared
    public revalidateVersion: u64, // the get's If-None-Match version; 0 = none
    public waiting: u32[],
  ) {}
}

// kvm_name and the key bytes as one Map key: the name cannot hold a newline (config_text.ts isKvmName), and each
// key byte becomes one UTF-16 unit, so two different keys never give the same string.
export function sharedGetKey(kvmName: string, key: ArrayBuffer): string {
  const units = new ArrayBuffer(key.byteLength << 1);
  const from = changetype<usize>(key);
  const to = changetype<usize>(units);
  for (let i = 0; i < key.byteLength; i++) store<u16>(to + (i << 1), load<u8>(from + i));
  return kvmName + "\n" + String.UTF16.decode(units);
}

export class Callouts {
  private byToken: Map<u32, Callout> = new Map();
  // A get in flight that later gets of the same map and key may join: shared key → token.
  private gets: Map<string, u32> = new Map();

  // The token of a get already out for `getKey` asking with the same revalidation version, or 0.
  sharedGet(getKey: string, revalidateVersion: u64): u32 {
    if (!this.gets.has(getKey)) return 0;
    const token = this.gets.get(getKey);
    if (this.byToken.get(token).revalidateVersion != revalidateVersion) return 0;
    return token;
  }

  // A callout just dispatched for `contextId`. A get becomes the one later gets of its key join.
  dispatched(token: u32, getKey: string, revalidateVersion: u64, contextId: u32): void {
    const waiting = new Array<u32>();
    waiting.push(contextId);
    this.byToken.set(token, new Callout(getKey, revalidateVersion, waiting));
    if (getKey.length > 0) this.gets.set(getKey, token);
  }

  join(token: u32, contextId: u32): void {
    this.byToken.get(token).waiting.push(contextId);
  }

  // A stream that ends while it waits: the others keep waiting, and the answer skips it.
  leave(token: u32, contextId: u32): void {
    if (!this.byToken.has(token)) return;
    const waiting = this.byToken.get(token).waiting;
    const at = waiting.indexOf(contextId);
    if (at >= 0) waiting.splice(at, 1);
  }

  // A put or delete of the key: a get that starts after it must not take an answer read before it.
  forgetGet(getKey: string): void {
    if (this.gets.has(getKey)) this.gets.delete(getKey);
  }

  // The answer came: the callout leaves the table, and the streams still waiting are returned.
  answered(token: u32): u32[] | null {
    if (!this.byToken.has(token)) return null;
    const callout = this.byToken.get(token);
    this.byToken.delete(token);
    const getKey = callout.getKey;
    if (getKey.length > 0 && this.gets.has(getKey) && this.gets.get(getKey) == token) {
      this.gets.delete(getKey);
    }
    return callout.waiting;
  }
}
