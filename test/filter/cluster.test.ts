// The cluster policy's callouts as the filter builds them, against cluster handlers that record
// what they get (the real KVM service is in cluster-service.test.ts): the request line and headers, the token
// from the VM's environment, pausing and resuming the request, and what happens to a body that
// arrives while a callout is out.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LogLevel, PluginStartError, type ClusterHandler } from "../../host/index.ts";
import { headerOf, send, startKvm } from "./support.ts";

type Seen = Parameters<ClusterHandler>[0];

function recorder(
  answer: (req: Seen) => ReturnType<ClusterHandler> = () => ({ headers: [[":status", "204"]] }),
) {
  const seen: Seen[] = [];
  const handler: ClusterHandler = (req) => {
    seen.push(req);
    return answer(req);
  };
  return { seen, handler };
}

const kong = {
  policy: "cluster",
  kvm_name: "api-settings",
  operation_type: "get",
  key_source_type: "literal",
  key_source_name: "backend-timeout",
  output_destination_type: "shared_context",
  output_destination_name: "backend_timeout",
};

describe("the callout request", () => {
  it("defaults: cluster kvm_service, :authority kvm-service, /v1 prefix, 1000 ms, no token", async () => {
    const r = recorder(() => ({ headers: [[":status", "200"]], body: "2500" }));
    const plugin = await startKvm(kong, { clusters: { kvm_service: r.handler } });
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 200);
    assert.equal(r.seen.length, 1);
    const h = (name: string) => headerOf(r.seen[0].headers, name);
    assert.equal(h(":method"), "GET");
    assert.equal(h(":path"), "/v1/kvms/api-settings/entries/backend-timeout");
    assert.equal(h(":authority"), "kvm-service");
    assert.equal(h("authorization"), undefined);
    assert.equal(r.seen[0].timeoutMs, 1000);
    assert.equal(
      plugin.worker().getFilterState(res.streamId).get("wasm.backend_timeout")?.toString(),
      "2500",
    );
  });

  it("put: the value as the body, x-kvm-ttl, If-None-Match for override false, the key percent-encoded byte for byte", async () => {
    const r = recorder(() => ({ headers: [[":status", "201"]] }));
    const plugin = await startKvm(
      {
        kvm_service: { cluster: "kvm", authority: "kvm.internal", path_prefix: "/api/v1/", timeout_ms: 250 },
        operations: [
          {
            policy: "cluster",
            kvm_name: "sessions",
            operation_type: "put",
            key_source_type: "query",
            key_source_name: "k",
            value_source_type: "header",
            value_source_name: "x-value",
            ttl: 60,
            override: false,
          },
        ],
      },
      { clusters: { kvm: r.handler } },
    );
    const res = await send(plugin.worker(), {
      path: "/?k=a%2Fb%20%C3%A9~%00.x",
      headers: [["x-value", "v1"]],
    });
    assert.equal(res.status, 200, res.body.toString());
    const h = (name: string) => headerOf(r.seen[0].headers, name);
    assert.equal(h(":method"), "PUT");
    assert.equal(h(":path"), "/api/v1/kvms/sessions/entries/a%2Fb%20%C3%A9~%00.x");
    assert.equal(h(":authority"), "kvm.internal");
    assert.equal(h("x-kvm-ttl"), "60");
    assert.equal(h("if-none-match"), "*");
    assert.equal(r.seen[0].body.toString(), "v1");
    assert.equal(r.seen[0].timeoutMs, 250);
  });

  it("the token comes from the VM's environment (KVM_SERVICE_TOKEN by default, or token_env), or from token", async () => {
    for (const [config, environment, want] of [
      [kong, { KVM_SERVICE_TOKEN: "from-default" }, "Bearer from-default"],
      [
        { kvm_service: { token_env: "MY_TOKEN" }, operations: [kong] },
        { MY_TOKEN: "from-named" },
        "Bearer from-named",
      ],
      [
        { kvm_service: { token: "inline" }, operations: [kong] },
        { KVM_SERVICE_TOKEN: "ignored" },
        "Bearer inline",
      ],
    ] as const) {
      const r = recorder();
      const plugin = await startKvm(config, { clusters: { kvm_service: r.handler }, environment });
      await send(plugin.worker(), { path: "/" });
      assert.equal(headerOf(r.seen[0].headers, "authorization"), want);
    }
  });

  it("a token_env variable that is not set refuses the configuration with one critical line", async () => {
    await assert.rejects(
      startKvm(
        { kvm_service: { token_env: "MISSING_TOKEN" }, operations: [kong] },
        { environment: { OTHER: "x" } },
      ),
      (err: unknown) =>
        err instanceof PluginStartError &&
        err.logs.includes(
          "invalid configuration: kvm_service.token_env: environment variable MISSING_TOKEN is not set (vm_config.environment_variables)",
        ),
    );
  });
});

describe("pausing the request", () => {
  it("the request waits for the answer; a body that arrives meanwhile waits too and goes on unchanged", async () => {
    let release: (() => void) | undefined;
    const plugin = await startKvm(
      {
        operations: [
          {
            ...kong,
            output_destination_type: "header",
            output_destination_name: "x-timeout",
          },
        ],
      },
      {
        clusters: {
          kvm_service: () =>
            new Promise((resolve) => {
              release = () => resolve({ headers: [[":status", "200"]], body: "30" });
            }),
        },
      },
    );
    let upstreamSaw: string | undefined;
    const pending = plugin
      .worker()
      .http(
        { method: "POST", path: "/", chunks: [Buffer.from("part one, "), Buffer.from("part two")] },
        (r) => {
          upstreamSaw = `${headerOf(r.headers, "x-timeout")} ${r.body.toString()}`;
          return { status: 200 };
        },
      );
    await new Promise((r) => setImmediate(r));
    assert.equal(upstreamSaw, undefined, "nothing reached the upstream while the callout was out");
    release!();
    assert.equal((await pending).status, 200);
    assert.equal(upstreamSaw, "30 part one, part two");
  });

  it("without allow_on_headers_stop_iteration (StopAllIteration) the request still resumes after the answer", async () => {
    const r = recorder(() => ({ headers: [[":status", "200"]], body: "7" }));
    const plugin = await startKvm(
      { ...kong, output_destination_type: "header", output_destination_name: "x-v" },
      { clusters: { kvm_service: r.handler }, allowOnHeadersStopIteration: false },
    );
    const res = await send(plugin.worker(), { path: "/", method: "POST", body: "payload" });
    assert.equal(res.status, 200);
    assert.equal(res.upstreamHeader("x-v"), "7");
    assert.equal(res.upstreamBody(), "payload");
  });

  it("a callback without headers (reset after the answer started) fails the operation with 503 kvm_service_reset", async () => {
    const plugin = await startKvm(kong, { clusters: { kvm_service: () => "reset_after_headers" } });
    const res = await send(plugin.worker(), { path: "/" });
    assert.equal(res.status, 503);
    assert.equal(res.json().error, "kvm_service_reset");
    assert.equal(plugin.getCounterMetric("envoy_kvm.cluster.get.callout_reset.api-settings"), 1);
    assert.deepEqual(plugin.getLogs(LogLevel.Error), []);
  });
});
