// The local policy's store: TTL, override false, default values, workers sharing one store, CAS.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../host/index.ts";
import { op, send, startKvm } from "./support.ts";

const putFromHeaders = (extra: Record<string, unknown> = {}) =>
  op({
    operation_type: "put",
    key_source_type: "header",
    key_source_name: "x-k",
    value_source_type: "header",
    value_source_name: "x-v",
    ...extra,
  });
const getToHeader = (extra: Record<string, unknown> = {}) =>
  op({
    operation_type: "get",
    key_source_type: "header",
    key_source_name: "x-k",
    output_destination_type: "header",
    output_destination_name: "x-out",
    ...extra,
  });

async function kvm(put: Record<string, unknown>, get: Record<string, unknown> = getToHeader(), options = {}) {
  const plugin = await startKvm({ routes: { put: [put], get: [get] } }, options);
  const putVia = (w: number, k: string, v: string) =>
    send(plugin.worker(w), {
      path: "/",
      routeName: "put",
      headers: [
        ["x-k", k],
        ["x-v", v],
      ],
    });
  const getVia = async (w: number, k: string) =>
    (await send(plugin.worker(w), { path: "/", routeName: "get", headers: [["x-k", k]] })).upstreamHeader(
      "x-out",
    );
  return {
    plugin,
    put: (k: string, v: string) => putVia(0, k, v),
    get: (k: string) => getVia(0, k),
    putVia,
    getVia,
  };
}

describe("TTL", () => {
  it("an entry is a hit until its TTL has passed on the host clock, then a miss", async () => {
    const clock = new ManualClock(1_000_000);
    const s = await kvm(putFromHeaders({ ttl: 30 }), getToHeader(), { clock });
    await s.put("a", "1");
    clock.advance(29_999);
    assert.equal(await s.get("a"), "1");
    clock.advance(1);
    assert.equal(await s.get("a"), undefined);
  });

  it("ttl 0 never expires", async () => {
    const clock = new ManualClock(1_000_000);
    const s = await kvm(putFromHeaders({ ttl: 0 }), getToHeader(), { clock });
    await s.put("a", "1");
    clock.advance(10 * 365 * 24 * 3600 * 1000);
    assert.equal(await s.get("a"), "1");
  });

  it("the TTL lives inside the shared-data value ([format][u64 expiry LE][payload])", async () => {
    const clock = new ManualClock(5_000);
    const s = await kvm(putFromHeaders({ ttl: 2 }), getToHeader(), { clock });
    await s.put("a", "xyz");
    const stored = s.plugin.sharedData.get("envoy_kvm:settings:a");
    assert.ok(stored);
    assert.equal(stored.value[0], 1);
    assert.equal(stored.value.readBigUInt64LE(1), 7_000n);
    assert.equal(stored.value.subarray(9).toString(), "xyz");
  });
});

describe("override false (Apigee add-if-absent)", () => {
  it("keeps an existing unexpired value and succeeds", async () => {
    const s = await kvm(putFromHeaders({ override: false }));
    assert.equal((await s.put("a", "first")).status, 200);
    assert.equal((await s.put("a", "second")).status, 200);
    assert.equal(await s.get("a"), "first");
  });

  it("replaces an expired value", async () => {
    const clock = new ManualClock(0);
    const s = await kvm(putFromHeaders({ override: false, ttl: 1 }), getToHeader(), { clock });
    await s.put("a", "first");
    clock.advance(1000);
    await s.put("a", "second");
    assert.equal(await s.get("a"), "second");
  });

  it("override true (default) replaces", async () => {
    const s = await kvm(putFromHeaders());
    await s.put("a", "first");
    await s.put("a", "second");
    assert.equal(await s.get("a"), "second");
  });
});

describe("default_value", () => {
  it("is written on a miss; a hit wins over it", async () => {
    const s = await kvm(putFromHeaders(), getToHeader({ default_value: "fallback" }));
    assert.equal(await s.get("a"), "fallback");
    await s.put("a", "real");
    assert.equal(await s.get("a"), "real");
  });

  it("without it a miss leaves the destination as the client sent it", async () => {
    const s = await kvm(putFromHeaders());
    const res = await send(s.plugin.worker(), {
      path: "/",
      routeName: "get",
      headers: [
        ["x-k", "none"],
        ["x-out", "client"],
      ],
    });
    assert.equal(res.upstreamHeader("x-out"), "client");
  });
});

describe("workers", () => {
  it("share one store per vm_id: a put on one worker is a hit on another", async () => {
    const s = await kvm(putFromHeaders(), getToHeader(), { workers: 3 });
    await s.putVia(0, "a", "from-0");
    assert.equal(await s.getVia(2, "a"), "from-0");
    await s.putVia(1, "a", "from-1");
    assert.equal(await s.getVia(0, "a"), "from-1");
  });

  it("a CAS mismatch between workers is retried and never loses the other worker's entry", async () => {
    const s = await kvm(putFromHeaders({ override: false }), getToHeader(), { workers: 2 });
    const store = s.plugin.sharedData;
    // The key exists (here as a deleted, empty entry), so every write to it is CAS-guarded.
    store.set(Buffer.from("envoy_kvm:settings:race"), Buffer.alloc(0), 0);
    // proxy_get_shared_data reads through peek (host/imports/shared-data.ts).
    const originalPeek = store.peek.bind(store);
    const other = s.plugin.worker(1);
    let interleaved = 0;
    // Between worker 0's read and its write, worker 1 puts the same key.
    store.peek = (key) => {
      const found = originalPeek(key);
      if (interleaved === 0 && key.toString().endsWith(":race")) {
        interleaved++;
        const id = other.initializeHttpContext({ routeName: "put" });
        other.callOnRequestHeaders(
          id,
          [
            [":method", "GET"],
            [":path", "/"],
            [":authority", "a"],
            ["x-k", "race"],
            ["x-v", "worker-1"],
          ],
          true,
        );
        other.completeHttpContext(id);
      }
      return found;
    };
    const res = await s.putVia(0, "race", "worker-0");
    store.peek = originalPeek;
    assert.equal(res.status, 200);
    assert.equal(interleaved, 1);
    // Worker 0's write carried a stale CAS, failed, re-read, found worker 1's value and kept it.
    assert.equal(await s.getVia(0, "race"), "worker-1");
  });

  it("a CAS retry with override true writes over the other worker's value", async () => {
    const s = await kvm(putFromHeaders(), getToHeader(), { workers: 2 });
    await s.putVia(0, "race", "seed");
    const store = s.plugin.sharedData;
    const originalSet = store.set.bind(store);
    let mismatches = 0;
    let injected = false;
    store.set = (key, value, cas) => {
      if (!injected && key.toString().endsWith(":race") && cas !== 0) {
        injected = true;
        originalSet(key, Buffer.from("concurrent"), 0); // another worker's write lands first
      }
      const result = originalSet(key, value, cas);
      if (result === 8) mismatches++;
      return result;
    };
    await s.putVia(0, "race", "final");
    store.set = originalSet;
    assert.equal(mismatches, 1);
    assert.equal(await s.getVia(1, "race"), "final");
  });
});
