// Failed operations: local replies, on_error_continue, store failures, limits, metrics, no leaks.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { op, send, startKvm } from "./support.ts";

const SECRET = "s3cr3t-value-do-not-log";

describe("failed operations", () => {
  it("a missing key input answers 400 with a JSON error naming the operation", async () => {
    const plugin = await startKvm(
      op({
        operation_type: "get",
        key_source_type: "header",
        key_source_name: "x-user",
        output_destination_type: "header",
        output_destination_name: "x-out",
      }),
    );
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 400);
    assert.equal(res.responseHeader("content-type"), "application/json");
    assert.deepEqual(res.json(), {
      error: "missing_key",
      message: 'key input header "x-user" is missing',
      kvm_name: "settings",
      operation_type: "get",
    });
    assert.equal(res.upstreamRequest, undefined);
    assert.equal(res.localReply?.details, "envoy_kvm_missing_key");
  });

  it("a missing value input answers 400 missing_value; a body that is not JSON counts as missing", async () => {
    const plugin = await startKvm(
      op({
        operation_type: "put",
        key_source_type: "literal",
        key_source_name: "k",
        value_source_type: "body",
        value_source_name: "a.b",
      }),
    );
    const res = await send(plugin.worker(), { path: "/", body: "{not json" });
    assert.equal(res.status, 400);
    assert.equal(res.json().error, "missing_value");
    assert.equal(res.json().message, 'value input body field "a.b" is missing');
  });

  it("on_error_continue lets the request and the later operations go on", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "header",
          key_source_name: "x-absent",
          value_source_type: "literal",
          value_source_name: "v",
          on_error_continue: true,
        }),
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "literal",
          value_source_name: "v2",
        }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "k",
          output_destination_type: "header",
          output_destination_name: "x-out",
        }),
      ],
    });
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 200);
    assert.equal(res.upstreamHeader("x-out"), "v2");
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.put.error.settings"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.put.ok.settings"), 1);
  });

  it("a shared-data failure answers 503 store_unavailable", async () => {
    const plugin = await startKvm(
      op({
        operation_type: "put",
        key_source_type: "literal",
        key_source_name: "k",
        value_source_type: "header",
        value_source_name: "x-v",
      }),
    );
    plugin.sharedData.set = () => 10; // InternalFailure
    const res = await send(plugin.worker(), { path: "/", headers: [["x-v", SECRET]] });
    assert.equal(res.status, 503);
    assert.equal(res.json().error, "store_unavailable");
  });

  it("keys over 512 bytes and values over 1 MiB are refused with 400", async () => {
    const plugin = await startKvm(
      op({
        operation_type: "put",
        key_source_type: "header",
        key_source_name: "x-k",
        value_source_type: "body",
        value_source_name: "",
      }),
      { bufferLimitBytes: 4 * 1024 * 1024 },
    );
    const longKey = await send(plugin.worker(), {
      path: "/",
      headers: [["x-k", "k".repeat(513)]],
      body: "v",
    });
    assert.equal(longKey.status, 400);
    assert.equal(longKey.json().error, "key_too_long");
    const okKey = await send(plugin.worker(), { path: "/", headers: [["x-k", "k".repeat(512)]], body: "v" });
    assert.equal(okKey.status, 200);
    const big = await send(plugin.worker(), {
      path: "/",
      headers: [["x-k", "big"]],
      body: "x".repeat(1024 * 1024 + 1),
    });
    assert.equal(big.status, 400);
    assert.equal(big.json().error, "value_too_large");
  });

  it("a value with CR/LF cannot become a header (no header injection): 400 invalid_value", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "body",
          value_source_name: "v",
        }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "k",
          output_destination_type: "header",
          output_destination_name: "x-out",
        }),
      ],
    });
    const res = await send(plugin.worker(), { path: "/", body: JSON.stringify({ v: "a\r\nx-injected: 1" }) });
    assert.equal(res.status, 400);
    assert.equal(res.json().error, "invalid_value");
  });

  it("values never appear in error bodies or logs", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "header",
          value_source_name: "x-v",
        }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "k",
          output_destination_type: "header",
          output_destination_name: "x-out",
        }),
        op({
          operation_type: "put",
          key_source_type: "header",
          key_source_name: "x-missing",
          value_source_type: "header",
          value_source_name: "x-v",
        }),
      ],
    });
    const res = await send(plugin.worker(), { path: "/", headers: [["x-v", SECRET]] });
    assert.equal(res.status, 400);
    assert.ok(!res.body.toString().includes(SECRET));
    assert.ok(plugin.getLogs().length > 0);
    assert.ok(!plugin.getLogs().some((line) => line.includes(SECRET)));
  });
});

describe("metrics", () => {
  it("counts per policy, operation, result and kvm_name", async () => {
    const plugin = await startKvm({
      routes: {
        put: [
          op({
            kvm_name: "api.v1-keys",
            operation_type: "put",
            key_source_type: "header",
            key_source_name: "x-k",
            value_source_type: "literal",
            value_source_name: "v",
          }),
        ],
        get: [
          op({
            kvm_name: "api.v1-keys",
            operation_type: "get",
            key_source_type: "header",
            key_source_name: "x-k",
            output_destination_type: "header",
            output_destination_name: "x-out",
          }),
        ],
        del: [
          op({
            kvm_name: "api.v1-keys",
            operation_type: "delete",
            key_source_type: "header",
            key_source_name: "x-k",
          }),
        ],
      },
    });
    const w = plugin.worker();
    await send(w, { path: "/", routeName: "get", headers: [["x-k", "a"]] });
    await send(w, { path: "/", routeName: "put", headers: [["x-k", "a"]] });
    await send(w, { path: "/", routeName: "get", headers: [["x-k", "a"]] });
    await send(w, { path: "/", routeName: "get", headers: [["x-k", "a"]] });
    await send(w, { path: "/", routeName: "del", headers: [["x-k", "a"]] });
    await send(w, { path: "/", routeName: "del" });
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.get.miss.api.v1-keys"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.get.hit.api.v1-keys"), 2);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.put.ok.api.v1-keys"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.delete.ok.api.v1-keys"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.delete.error.api.v1-keys"), 1);
  });

  it("workers add to the same process-wide counter", async () => {
    const plugin = await startKvm(
      op({
        operation_type: "put",
        key_source_type: "literal",
        key_source_name: "k",
        value_source_type: "literal",
        value_source_name: "v",
      }),
      { workers: 2 },
    );
    await send(plugin.worker(0), { path: "/" });
    await send(plugin.worker(1), { path: "/" });
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.put.ok.settings"), 2);
  });
});

describe("cluster policy without a cluster in Envoy", () => {
  it("answers 503 kvm_service_unavailable (the dispatch is refused), counted as an error", async () => {
    const plugin = await startKvm(
      {
        operations: [
          op({
            policy: "cluster",
            operation_type: "delete",
            key_source_type: "literal",
            key_source_name: "k",
          }),
        ],
      },
      { clusters: {} },
    );
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 503);
    assert.equal(res.json().error, "kvm_service_unavailable");
    assert.equal(res.json().operation_type, "delete");
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.delete.error.settings"), 1);
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.delete.callout_refused.settings"), 1);
  });
});

describe("more failure paths", () => {
  const putThenGet = (dest: string) => [
    op({
      operation_type: "put",
      key_source_type: "literal",
      key_source_name: "k",
      value_source_type: "query",
      value_source_name: "v",
    }),
    op({
      operation_type: "get",
      key_source_type: "literal",
      key_source_name: "k",
      output_destination_type: dest,
      output_destination_name: "x-out",
    }),
  ];

  it("control characters other than HTAB never reach a header; HTAB and obs-text do", async () => {
    const plugin = await startKvm({ operations: putThenGet("header") });
    for (const bad of ["a%01b", "a%7Fb"]) {
      const res = await send(plugin.worker(), { path: `/?v=${bad}` });
      assert.equal(res.status, 400, bad);
      assert.equal(res.json().error, "invalid_value");
    }
    const ok = await send(plugin.worker(), { path: "/?v=a%09b%C3%A9" });
    assert.equal(ok.status, 200);
    assert.equal(ok.upstreamHeader("x-out"), "a\tbé");
  });

  it("a failed operation's local reply carries no response_header values of earlier operations", async () => {
    const plugin = await startKvm({
      operations: [
        ...putThenGet("response_header"),
        op({
          operation_type: "get",
          key_source_type: "header",
          key_source_name: "x-absent",
          output_destination_type: "header",
          output_destination_name: "x-o",
        }),
      ],
    });
    const res = await send(plugin.worker(), { path: `/?v=${SECRET}` });
    assert.equal(res.status, 400);
    assert.equal(res.responseHeader("x-out"), undefined);
  });

  it("CAS retries that never succeed end in 503 store_unavailable", async () => {
    const plugin = await startKvm(
      op({
        operation_type: "put",
        key_source_type: "literal",
        key_source_name: "k",
        value_source_type: "literal",
        value_source_name: "v",
      }),
    );
    plugin.sharedData.set(Buffer.from("envoy_kvm:settings:k"), Buffer.alloc(0), 0);
    let attempts = 0;
    plugin.sharedData.set = () => {
      attempts++;
      return 8; // CasMismatch: another worker always wins
    };
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 503);
    assert.equal(res.json().error, "store_unavailable");
    assert.equal(attempts, 32);
  });

  it("on_error_continue also covers store failures", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "literal",
          value_source_name: "v",
          on_error_continue: true,
        }),
      ],
    });
    plugin.sharedData.set = () => 10;
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 200);
    assert.equal(plugin.getCounterMetric("envoy_kvm.local.put.error.settings"), 1);
  });
});
