// Concurrent cluster gets of one key within a worker share one callout: the first request
// dispatches it, the others wait on it, and its answer (or its failure) resumes every request
// still waiting, each by its own operation's rules. Driven at the ABI level so the requests are
// truly concurrent: every request is paused before any answer is delivered.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  FilterHeadersStatus,
  LogLevel,
  ManualClock,
  type ClusterAnswer,
  type Worker,
} from "../../host/index.ts";
import { headerOf, startKvm } from "./support.ts";
import { recordReliability } from "../reliability/record.ts";

const get = {
  policy: "cluster",
  kvm_name: "flags",
  operation_type: "get",
  key_source_type: "header",
  key_source_name: "x-key",
  output_destination_type: "header",
  output_destination_name: "x-out",
};

// The cluster never answers by itself: the test delivers each answer with callOnHttpCallResponse.
const silentCluster = { kvm_service: () => new Promise<ClusterAnswer>(() => {}) };

function startGet(w: Worker, key: string, routeName = ""): number {
  const id = w.initializeHttpContext({ routeName });
  const status = w.callOnRequestHeaders(
    id,
    [
      [":method", "GET"],
      [":path", "/"],
      [":authority", "api.example.com"],
      ["x-key", key],
    ],
    true,
  );
  assert.equal(status, FilterHeadersStatus.StopIteration, "the request waits for the callout");
  return id;
}

function calloutPaths(w: Worker): string[] {
  return w.getCalloutAttributes().map((c) => headerOf(c.headers, ":path")!);
}

describe("concurrent gets of one key share one callout", () => {
  it("8 requests, 1 callout, and each of the 8 gets the value", async () => {
    const plugin = await startKvm(get, { clusters: silentCluster });
    const w = plugin.worker();
    const ids = Array.from({ length: 8 }, () => startGet(w, "dark-mode"));
    assert.deepEqual(calloutPaths(w), ["/v1/kvms/flags/entries/dark-mode"]);

    w.callOnHttpCallResponse(w.pendingCallouts()[0], { headers: [[":status", "200"]], body: "on" });
    for (const id of ids) {
      assert.equal(w.getStreamActions(id).continueRequest, true, `request ${id} resumed`);
      assert.equal(headerOf(w.getCurrentRequestHeaders(id), "x-out"), "on");
    }
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_2xx.flags"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_shared.flags"), 7);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.hit.flags"), 8);
    recordReliability({
      area: "concurrency",
      name: "filter: concurrent cluster gets of one key in a worker",
      cases: ids.length,
      result: "1 callout, every request answered with its value",
    });
  });

  it("different keys and different maps each get their own callout", async () => {
    const plugin = await startKvm(
      { operations: [get], routes: { other: [{ ...get, kvm_name: "limits" }] } },
      { clusters: silentCluster },
    );
    const w = plugin.worker();
    startGet(w, "a");
    startGet(w, "b");
    startGet(w, "a");
    // The route's list runs after `operations`: its get of "limits" starts once "flags" is answered.
    const routed = startGet(w, "a", "other");
    assert.deepEqual(calloutPaths(w).sort(), ["/v1/kvms/flags/entries/a", "/v1/kvms/flags/entries/b"]);
    const tokenOfA = w
      .getCalloutAttributes()
      .find((c) => headerOf(c.headers, ":path")!.endsWith("/a"))!.token;
    w.callOnHttpCallResponse(tokenOfA, { headers: [[":status", "200"]], body: "1" });
    assert.deepEqual(calloutPaths(w).sort(), ["/v1/kvms/flags/entries/b", "/v1/kvms/limits/entries/a"]);
    assert.equal(w.getStreamActions(routed).continueRequest, false, "still waiting for limits/a");
  });

  it("a request that ends while it waits does not disturb the others, even the one that dispatched", async () => {
    const plugin = await startKvm(get, { clusters: silentCluster });
    const w = plugin.worker();
    const [first, second, third] = [startGet(w, "k"), startGet(w, "k"), startGet(w, "k")];
    w.completeHttpContext(first);
    w.completeHttpContext(third);
    w.callOnHttpCallResponse(w.pendingCallouts()[0], { headers: [[":status", "200"]], body: "v" });
    assert.equal(headerOf(w.getCurrentRequestHeaders(second), "x-out"), "v");
    assert.equal(w.getStreamActions(second).continueRequest, true);
    assert.equal(w.failed, false);
    assert.deepEqual(plugin.getLogs(LogLevel.Error), []);

    // Every waiter gone: the answer finds nobody and changes nothing.
    const alone = startGet(w, "k");
    w.completeHttpContext(alone);
    w.callOnHttpCallResponse(w.pendingCallouts()[0], { headers: [[":status", "200"]], body: "v" });
    assert.equal(w.failed, false);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.hit.flags"), 1);
  });

  it("a failed callout fails every waiter by its own on_error_continue", async () => {
    const plugin = await startKvm(
      {
        routes: { strict: [get], lenient: [{ ...get, on_error_continue: true }] },
      },
      { clusters: silentCluster },
    );
    const w = plugin.worker();
    const answers: ClusterAnswer[] = ["timeout", "reset_after_headers", { headers: [[":status", "500"]] }];
    for (const answer of answers) {
      const strict = [startGet(w, "k", "strict"), startGet(w, "k", "strict")];
      const lenient = startGet(w, "k", "lenient");
      assert.equal(w.pendingCallouts().length, 1, `one callout before ${JSON.stringify(answer)}`);
      w.callOnHttpCallResponse(w.pendingCallouts()[0], answer);
      for (const id of strict) {
        const reply = w.getSentLocalResponse(id);
        assert.equal(reply?.statusCode, 503, `strict request answered 503 after ${JSON.stringify(answer)}`);
      }
      assert.equal(w.getSentLocalResponse(lenient), undefined);
      assert.equal(w.getStreamActions(lenient).continueRequest, true);
      for (const id of [...strict, lenient]) w.completeHttpContext(id);
    }
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_timeout.flags"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_reset.flags"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_5xx.flags"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.error.flags"), 9);
    recordReliability({
      area: "faults",
      name: "filter: a shared cluster get's callout fails (timeout, reset, 5xx)",
      cases: 3,
      result: "every waiter failed or continued by its own on_error_continue",
    });
  });

  it("a put of the key in between: a later get does not take the earlier get's answer", async () => {
    const put = {
      ...get,
      operation_type: "put",
      value_source_type: "header",
      value_source_name: "x-value",
      output_destination_type: undefined,
      output_destination_name: undefined,
    };
    const plugin = await startKvm({ routes: { read: [get], write: [put] } }, { clusters: silentCluster });
    const w = plugin.worker();
    startGet(w, "k", "read");
    const writer = w.initializeHttpContext({ routeName: "write" });
    w.callOnRequestHeaders(
      writer,
      [
        [":method", "GET"],
        [":path", "/"],
        [":authority", "api.example.com"],
        ["x-key", "k"],
        ["x-value", "new"],
      ],
      true,
    );
    startGet(w, "k", "read");
    assert.deepEqual(
      w.getCalloutAttributes().map((c) => headerOf(c.headers, ":method")),
      ["GET", "PUT", "GET"],
    );
  });

  it("with cache_ttl: the misses share the callout and the cache serves the requests after it", async () => {
    const plugin = await startKvm({ ...get, cache_ttl: 60 }, { clusters: silentCluster });
    const w = plugin.worker();
    const ids = [startGet(w, "k"), startGet(w, "k"), startGet(w, "k")];
    w.callOnHttpCallResponse(w.pendingCallouts()[0], {
      headers: [
        [":status", "200"],
        ["etag", '"4"'],
      ],
      body: "cached",
    });
    for (const id of ids) assert.equal(headerOf(w.getCurrentRequestHeaders(id), "x-out"), "cached");
    const later = w.initializeHttpContext();
    w.callOnRequestHeaders(
      later,
      [
        [":path", "/"],
        ["x-key", "k"],
      ],
      true,
    );
    assert.equal(headerOf(w.getCurrentRequestHeaders(later), "x-out"), "cached");
    assert.equal(w.pendingCallouts().length, 0);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.cache_miss.flags"), 3);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.cache_hit.flags"), 1);
  });

  it("revalidations of one stale entry share the callout, and a 304 serves every waiter the cached value", async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const plugin = await startKvm({ ...get, cache_ttl: 1 }, { clusters: silentCluster, clock });
    const w = plugin.worker();
    startGet(w, "k");
    w.callOnHttpCallResponse(w.pendingCallouts()[0], {
      headers: [
        [":status", "200"],
        ["etag", '"7"'],
      ],
      body: "kept",
    });
    clock.advance(2000);
    const ids = [startGet(w, "k"), startGet(w, "k")];
    const callouts = w.getCalloutAttributes();
    assert.deepEqual(
      callouts.map((c) => headerOf(c.headers, "if-none-match")),
      ['"7"'],
    );
    w.callOnHttpCallResponse(callouts[0].token, { headers: [[":status", "304"]] });
    for (const id of ids) assert.equal(headerOf(w.getCurrentRequestHeaders(id), "x-out"), "kept");
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.cache_revalidated.flags"), 2);
  });
});
