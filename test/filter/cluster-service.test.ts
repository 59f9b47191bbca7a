// The `cluster` policy through the compiled filter, against the real KVM service on PostgreSQL
// (test/e2e/helpers.ts): every operation, source and destination; chains mixing local and cluster
// operations; the Kong documentation's example as is; the read-through cache; every failure path
// with and without on_error_continue; streams that end while their callout is out.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LogLevel, ManualClock } from "../../host/index.ts";
import { entryUrl } from "../service/helpers.ts";
import { op, send, startKvm } from "./support.ts";
import {
  closedAddress,
  countingCluster,
  garbageServer,
  startService,
  stubServer,
  type RunningService,
} from "../e2e/helpers.ts";

let service: RunningService;
before(async () => {
  service = await startService();
});
after(async () => {
  await service.close();
});

const kvm = (fields: Record<string, unknown>) => op({ policy: "cluster", kvm_name: "e2e", ...fields });
const inject = (
  method: "GET" | "PUT" | "DELETE",
  kvmName: string,
  key: string | Buffer,
  payload?: string,
  headers = {},
) => service.app.app.inject({ method, url: entryUrl(kvmName, key), payload, headers });

function withService(extra: Record<string, unknown> = {}) {
  return { clusters: { kvm_service: { address: service.address } }, ...extra };
}

describe("cluster get / put / delete against the KVM service", () => {
  it("a cluster get receives the value stored in PostgreSQL", async () => {
    await inject("PUT", "e2e", "plan", "gold");
    const plugin = await startKvm(
      kvm({
        operation_type: "get",
        key_source_type: "literal",
        key_source_name: "plan",
        output_destination_type: "header",
        output_destination_name: "x-plan",
      }),
      withService(),
    );
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.upstreamHeader("x-plan"), "gold");
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.hit.e2e"), 1);
    assert.deepEqual(plugin.worker().pendingCallouts(), []);
  });

  it("the Kong documentation's example works as is: cluster get of a literal key into shared_context", async () => {
    await inject("PUT", "api-settings", "backend-timeout", "2500");
    const config = {
      policy: "cluster",
      kvm_name: "api-settings",
      operation_type: "get",
      key_source_type: "literal",
      key_source_name: "backend-timeout",
      output_destination_type: "shared_context",
      output_destination_name: "backend_timeout",
    };
    const plugin = await startKvm(config, withService());
    const w = plugin.worker();
    const res = await send(w, { path: "/" });
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(w.getFilterState(res.streamId).get("wasm.backend_timeout")?.toString(), "2500");
  });

  it("put sends the value, x-kvm-ttl and a byte-for-byte percent-encoded key; delete removes it", async () => {
    const key = "a/b %é~";
    const plugin = await startKvm(
      {
        operations: [
          kvm({
            operation_type: "put",
            key_source_type: "header",
            key_source_name: "x-key",
            value_source_type: "body",
            value_source_name: "user.id",
            ttl: 3600,
          }),
        ],
      },
      withService(),
    );
    const res = await send(plugin.worker(), {
      path: "/",
      method: "POST",
      headers: [["x-key", "k1"]],
      body: '{"user":{"id":"u-42"}}',
    });
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.upstreamBody(), '{"user":{"id":"u-42"}}', "the body goes on unchanged");
    const stored = await inject("GET", "e2e", "k1");
    assert.equal(stored.statusCode, 200);
    assert.equal(stored.body, "u-42");
    assert.ok(Number(stored.headers["x-kvm-expires-at"]) > Date.now() + 3500_000, "ttl reached the service");

    const literal = await startKvm(
      {
        operations: [
          kvm({
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: key,
            value_source_type: "literal",
            value_source_name: "odd",
          }),
          kvm({
            operation_type: "get",
            key_source_type: "literal",
            key_source_name: key,
            output_destination_type: "response_header",
            output_destination_name: "x-odd",
          }),
          kvm({ operation_type: "delete", key_source_type: "literal", key_source_name: key }),
        ],
      },
      withService(),
    );
    const r2 = await send(literal.worker(), { path: "/" });
    assert.equal(r2.status, 200, r2.body.toString());
    assert.equal(r2.responseHeader("x-odd"), "odd", "put then get of the same odd key, in order");
    assert.equal((await inject("GET", "e2e", Buffer.from(key, "utf8"))).statusCode, 404, "deleted");
  });

  it("override false keeps an existing entry (the service's 412 is not an error)", async () => {
    await inject("PUT", "e2e", "first", "one");
    const plugin = await startKvm(
      kvm({
        operation_type: "put",
        key_source_type: "literal",
        key_source_name: "first",
        value_source_type: "literal",
        value_source_name: "two",
        override: false,
      }),
      withService(),
    );
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 200, res.body.toString());
    assert.equal((await inject("GET", "e2e", "first")).body, "one");
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.put.ok.e2e"), 1);
  });

  it("a miss applies default_value; every destination receives the value", async () => {
    await inject("PUT", "e2e", "dest", "v1");
    const destinations: [string, string, (r: Awaited<ReturnType<typeof send>>) => string | undefined][] = [
      ["header", "x-d", (r) => r.upstreamHeader("x-d")],
      [
        "query",
        "d",
        (r) => new URL(r.upstreamHeader(":path") ?? "", "http://x").searchParams.get("d") ?? undefined,
      ],
      ["body", "d", (r) => JSON.parse(r.upstreamBody() ?? "{}").d],
      ["response_header", "x-d", (r) => r.responseHeader("x-d")],
    ];
    for (const [type, name, read] of destinations) {
      const plugin = await startKvm(
        {
          operations: [
            kvm({
              operation_type: "get",
              key_source_type: "literal",
              key_source_name: "dest",
              output_destination_type: type,
              output_destination_name: name,
            }),
            kvm({
              operation_type: "get",
              key_source_type: "literal",
              key_source_name: "absent",
              output_destination_type: "shared_context",
              output_destination_name: "fallback",
              default_value: "dflt",
            }),
          ],
        },
        withService(),
      );
      const w = plugin.worker();
      const res = await send(w, { path: "/p", method: "POST", body: "{}" });
      assert.equal(res.status, 200, `${type}: ${res.body.toString()}`);
      assert.equal(read(res), "v1", type);
      assert.equal(w.getFilterState(res.streamId).get("wasm.fallback")?.toString(), "dflt");
      assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.miss.e2e"), 1);
    }
  });
});

describe("chains mixing local and cluster operations run strictly in order", () => {
  it("local put → cluster put of the shared value → cluster get → local get", async () => {
    const plugin = await startKvm(
      {
        operations: [
          op({
            policy: "local",
            kvm_name: "loc",
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: "l",
            value_source_type: "header",
            value_source_name: "x-in",
          }),
          op({
            policy: "local",
            kvm_name: "loc",
            operation_type: "get",
            key_source_type: "literal",
            key_source_name: "l",
            output_destination_type: "shared_context",
            output_destination_name: "carried",
          }),
          kvm({
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: "chain",
            value_source_type: "shared_context",
            value_source_name: "carried",
          }),
          kvm({
            operation_type: "get",
            key_source_type: "literal",
            key_source_name: "chain",
            output_destination_type: "header",
            output_destination_name: "x-chain",
          }),
        ],
      },
      withService(),
    );
    const res = await send(plugin.worker(), { path: "/", headers: [["x-in", "relay"]] });
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.upstreamHeader("x-chain"), "relay");
    assert.equal((await inject("GET", "e2e", "chain")).body, "relay");
  });

  it("a body-sourced operation works with a callout before and after it, and the body can be rewritten", async () => {
    await inject("PUT", "e2e", "tier", "platinum");
    const plugin = await startKvm(
      {
        operations: [
          kvm({
            operation_type: "get",
            key_source_type: "literal",
            key_source_name: "tier",
            output_destination_type: "body",
            output_destination_name: "account.tier",
          }),
          op({
            policy: "local",
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: "b",
            value_source_type: "body",
            value_source_name: "account.id",
          }),
          kvm({
            operation_type: "put",
            key_source_type: "body",
            key_source_name: "account.id",
            value_source_type: "body",
            value_source_name: "account.tier",
          }),
        ],
      },
      withService(),
    );
    for (const chunks of [undefined, ['{"account":', '{"id":"acct-7"}}']]) {
      const res = await plugin.worker().http(
        {
          method: "POST",
          path: "/",
          body: chunks ? undefined : '{"account":{"id":"acct-7"}}',
          chunks: chunks?.map((c) => Buffer.from(c)),
        },
        (r) => ({ status: 200, body: r.body }),
      );
      assert.equal(res.status, 200, res.body.toString());
      assert.deepEqual(JSON.parse(res.body.toString()), { account: { id: "acct-7", tier: "platinum" } });
      assert.equal(
        res.upstreamRequest?.headers.find(([k]) => k === "content-length")?.[1] ?? String(res.body.length),
        String(res.body.length),
      );
      assert.equal((await inject("GET", "e2e", "acct-7")).body, "platinum");
    }
  });
});

describe("the read-through cache (cache_ttl)", () => {
  const cachedGet = (key: string, ttl = 30) =>
    kvm({
      operation_type: "get",
      key_source_type: "header",
      key_source_name: "x-key",
      output_destination_type: "header",
      output_destination_name: "x-out",
      default_value: "none",
      cache_ttl: ttl,
    });

  it("hit, negative hit, expiry with revalidation (304), counted, and the cached path makes no callout", async () => {
    await inject("PUT", "e2e", "c1", "cached-value");
    const cluster = countingCluster(service.address);
    const clock = new ManualClock(1_700_000_000_000);
    const plugin = await startKvm(cachedGet("c1"), { clusters: { kvm_service: cluster.handler }, clock });
    const w = plugin.worker();
    const get = (key: string) => send(w, { path: "/", headers: [["x-key", key]] });

    assert.equal((await get("c1")).upstreamHeader("x-out"), "cached-value");
    assert.equal(cluster.calls(), 1);
    assert.equal((await get("c1")).upstreamHeader("x-out"), "cached-value");
    assert.equal(cluster.calls(), 1, "served from the cache");

    assert.equal((await get("c-absent")).upstreamHeader("x-out"), "none");
    assert.equal((await get("c-absent")).upstreamHeader("x-out"), "none");
    assert.equal(cluster.calls(), 2, "the miss is cached too");

    clock.advance(31_000);
    assert.equal((await get("c1")).upstreamHeader("x-out"), "cached-value");
    assert.equal(cluster.calls(), 3, "expired: revalidated with one callout");
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.cache_revalidated.e2e"), 1);
    assert.equal((await get("c1")).upstreamHeader("x-out"), "cached-value");
    assert.equal(cluster.calls(), 3, "fresh again after the 304");

    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.cache_hit.e2e"), 3);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.cache_miss.e2e"), 3);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_2xx.e2e"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_3xx.e2e"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_4xx.e2e"), 1);
    assert.equal(plugin.getHistogramValues("envoy_kvm.cluster.get.callout_ms.e2e")?.length, 3);
  });

  it("a changed entry is fetched again when the cached one expires", async () => {
    await inject("PUT", "e2e", "c2", "old");
    const clock = new ManualClock(1_700_000_000_000);
    const plugin = await startKvm(cachedGet("c2", 5), withService({ clock }));
    const get = () => send(plugin.worker(), { path: "/", headers: [["x-key", "c2"]] });
    assert.equal((await get()).upstreamHeader("x-out"), "old");
    await inject("PUT", "e2e", "c2", "new");
    assert.equal(
      (await get()).upstreamHeader("x-out"),
      "old",
      "stale within cache_ttl (the documented bound)",
    );
    clock.advance(5_000);
    assert.equal((await get()).upstreamHeader("x-out"), "new");
  });

  it("a put or delete through this Envoy drops the cached entry at once", async () => {
    await inject("PUT", "e2e", "c3", "before");
    const cluster = countingCluster(service.address);
    const plugin = await startKvm(
      {
        routes: {
          read: [cachedGet("c3")],
          write: [
            kvm({
              operation_type: "put",
              key_source_type: "header",
              key_source_name: "x-key",
              value_source_type: "header",
              value_source_name: "x-value",
            }),
          ],
          remove: [kvm({ operation_type: "delete", key_source_type: "header", key_source_name: "x-key" })],
        },
      },
      { clusters: { kvm_service: cluster.handler } },
    );
    const w = plugin.worker();
    const read = async () =>
      (await send(w, { path: "/", routeName: "read", headers: [["x-key", "c3"]] })).upstreamHeader("x-out");
    assert.equal(await read(), "before");
    await send(w, {
      path: "/",
      routeName: "write",
      headers: [
        ["x-key", "c3"],
        ["x-value", "after"],
      ],
    });
    assert.equal(await read(), "after");
    await send(w, { path: "/", routeName: "remove", headers: [["x-key", "c3"]] });
    assert.equal(await read(), "none");
    assert.equal(cluster.calls(), 5);
  });

  it("two workers share one cache", async () => {
    await inject("PUT", "e2e", "c4", "shared");
    const cluster = countingCluster(service.address);
    const plugin = await startKvm(cachedGet("c4"), {
      clusters: { kvm_service: cluster.handler },
      workers: 2,
    });
    for (const i of [0, 1]) {
      const res = await send(plugin.worker(i), { path: "/", headers: [["x-key", "c4"]] });
      assert.equal(res.upstreamHeader("x-out"), "shared");
    }
    assert.equal(cluster.calls(), 1, "worker 1 was served from worker 0's callout");
  });
});

describe("failure paths: each answers 503 naming the map and operation, or continues with on_error_continue", () => {
  const get = (extra: Record<string, unknown> = {}) =>
    kvm({
      operation_type: "get",
      key_source_type: "literal",
      key_source_name: "k",
      output_destination_type: "header",
      output_destination_name: "x-out",
      ...extra,
    });
  const cases: {
    name: string;
    start(): Promise<{
      options: Record<string, unknown>;
      config?: Record<string, unknown>;
      close(): Promise<void>;
    }>;
    code: string;
  }[] = [
    {
      name: "the service is stopped (nothing listens)",
      start: async () => ({
        options: { clusters: { kvm_service: { address: await closedAddress() } } },
        close: async () => {},
      }),
      code: "kvm_service_unreachable",
    },
    {
      name: "the service is slower than timeout_ms",
      start: async () => {
        const slow = await stubServer((_req, res) => setTimeout(() => res.end("late"), 2_000));
        return {
          options: { clusters: { kvm_service: { address: slow.address } } },
          config: { kvm_service: { timeout_ms: 100 } },
          close: slow.close,
        };
      },
      code: "kvm_service_timeout",
    },
    {
      name: "the service answers 500",
      start: async () => {
        const failing = await stubServer((_req, res) => {
          res.statusCode = 500;
          res.end('{"error":"internal"}');
        });
        return { options: { clusters: { kvm_service: { address: failing.address } } }, close: failing.close };
      },
      code: "kvm_service_error",
    },
    {
      name: "the service answers garbage (not HTTP)",
      start: async () => {
        const garbage = await garbageServer();
        return { options: { clusters: { kvm_service: { address: garbage.address } } }, close: garbage.close };
      },
      code: "kvm_service_unreachable",
    },
    {
      name: "the service refuses the token (401)",
      start: async () => {
        const secured = await startService({ KVM_DATA_TOKENS: "right-token" });
        return {
          options: {
            clusters: { kvm_service: { address: secured.address } },
            environment: { KVM_SERVICE_TOKEN: "wrong-token" },
          },
          close: secured.close,
        };
      },
      code: "kvm_service_unauthorized",
    },
    {
      name: "Envoy has no such cluster (refused at dispatch)",
      start: async () => ({ options: { clusters: {} }, close: async () => {} }),
      code: "kvm_service_unavailable",
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const setup = await c.start();
      try {
        const strict = await startKvm({ ...setup.config, operations: [get()] }, setup.options);
        const res = await send(strict.worker(), { path: "/" });
        assert.equal(res.status, 503, res.body.toString());
        assert.equal(res.responseHeader("content-type"), "application/json");
        assert.deepEqual(
          { ...res.json(), message: undefined },
          { error: c.code, message: undefined, kvm_name: "e2e", operation_type: "get" },
        );
        assert.equal(res.upstreamRequest, undefined, "the upstream never saw the request");
        assert.equal(strict.getCounterMetric("envoy_kvm.cluster.get.error.e2e"), 1);

        const lenient = await startKvm(
          { ...setup.config, operations: [get({ on_error_continue: true })] },
          setup.options,
        );
        const passed = await send(lenient.worker(), { path: "/" });
        assert.equal(passed.status, 200, passed.body.toString());
        assert.equal(passed.upstreamHeader("x-out"), undefined);
        assert.deepEqual(lenient.worker().pendingCallouts(), []);
        assert.equal(lenient.worker().failed, false);
      } finally {
        await setup.close();
      }
    });
  }

  it("a missing cluster is logged once per worker, not per request", async () => {
    const plugin = await startKvm({ operations: [get()] }, { clusters: {} });
    for (let i = 0; i < 3; i++) assert.equal((await send(plugin.worker(), { path: "/" })).status, 503);
    assert.equal(plugin.getLogs(LogLevel.Error).filter((l) => l.includes("kvm_service")).length, 1);
  });
});

describe("streams that end while their callout is out", () => {
  it("the client disconnects: the answer arrives later, touches nothing, and the worker keeps serving", async () => {
    await inject("PUT", "e2e", "gone", "v");
    const plugin = await startKvm(
      kvm({
        operation_type: "get",
        key_source_type: "literal",
        key_source_name: "gone",
        output_destination_type: "header",
        output_destination_name: "x-out",
      }),
      withService(),
    );
    const w = plugin.worker();
    for (let i = 0; i < 20; i++) {
      const id = w.initializeHttpContext();
      w.callOnRequestHeaders(
        id,
        [
          [":method", "GET"],
          [":path", "/"],
          [":authority", "a"],
        ],
        true,
      );
      assert.equal(w.pendingCallouts().length, i + 1);
      w.completeHttpContext(id); // the client went away: on_log, on_done, on_delete
    }
    await w.flushCallouts();
    assert.deepEqual(w.pendingCallouts(), []);
    assert.equal(w.failed, false);
    const res = await send(w, { path: "/" });
    assert.equal(res.upstreamHeader("x-out"), "v");
  });
});
