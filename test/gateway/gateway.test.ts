// The local gateway on envoy/envoy.yaml itself: routes by name, the filter that runs everywhere, a
// disabled filter switched on by one route, the router to the echo upstream, one access log line per
// request, two VMs over one store; an envoy.yaml using only supported fields runs, and an unsupported
// field stops the start naming its path.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import { createEchoServer } from "../../gateway/echo-upstream.ts";
import { GatewayConfigError, loadGatewayConfig, parseGatewayConfig } from "../../gateway/config.ts";
import { matchRoute } from "../../gateway/match.ts";
import { startGateway, virtualHostRoutes, type RunningGateway } from "../../gateway/server.ts";
import { gatewayYaml } from "./yaml.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const FILES = { "/etc/envoy/kvm_filter.wasm": `${ROOT}build/kvm_filter.wasm` };

// The echo upstream's answer: `METHOD path`, `name: value` lines, a blank line, the body.
function echoed(text: string, name: string): string | undefined {
  return text
    .split("\n\n", 1)[0]
    .split("\n")
    .find((line) => line.startsWith(`${name}: `))
    ?.slice(name.length + 2);
}

let echo: Server;
let echoPort: number;

before(async () => {
  echo = createEchoServer();
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  echoPort = (echo.address() as AddressInfo).port;
});
after(async () => {
  echo.closeAllConnections();
  await new Promise((resolve) => echo.close(resolve));
});

describe("gateway on envoy/envoy.yaml", () => {
  let gateway: RunningGateway;
  let url: string;
  const logs: string[] = [];

  before(async () => {
    gateway = await startGateway(loadGatewayConfig(`${ROOT}envoy/envoy.yaml`, {}), {
      clusters: { upstream: `127.0.0.1:${echoPort}`, kvm_service: "127.0.0.1:1" },
      listen: { ingress: "127.0.0.1:0" },
      files: FILES,
      log: (line) => logs.push(line),
    });
    url = gateway.urls.ingress;
  });
  after(() => gateway.stop());

  it("runs tenant-settings.json on every route, keyed by route name; two VMs share one store", async () => {
    const get = () => fetch(`${url}/orders`, { headers: { "x-tenant": "acme" } });
    assert.equal(echoed(await (await get()).text(), "x-tenant-plan"), "free");
    const put = await fetch(`${url}/tenants/acme`, {
      method: "PUT",
      headers: { "x-tenant": "acme" },
      body: '{"plan":"gold"}',
    });
    assert.equal(put.status, 200);
    assert.equal((await put.text()).split("\n")[0], "PUT /tenants/acme");
    // Requests alternate between the two VMs: the put ran on one, these reads on both.
    for (let i = 0; i < 2; i++) {
      const read = await get();
      assert.equal(read.headers.get("x-tenant-plan"), "gold");
      assert.equal(echoed(await read.text(), "x-tenant-plan"), "gold");
    }
    await (await fetch(`${url}/tenants/acme`, { method: "DELETE", headers: { "x-tenant": "acme" } })).text();
    assert.equal(echoed(await (await get()).text(), "x-tenant-plan"), "free");
  });

  it("runs the disabled idempotency filter only on the route that enables it", async () => {
    const order = (id: string) =>
      fetch(`${url}/orders`, {
        method: "POST",
        headers: { "idempotency-key": "k-1" },
        body: `{"order":{"id":"${id}"}}`,
      });
    const first = await order("o-1");
    assert.equal(first.headers.get("x-original-order-id"), null);
    await first.text();
    const replay = await order("o-2");
    assert.equal(replay.headers.get("x-original-order-id"), "o-1");
    await replay.text();
    const missing = await fetch(`${url}/orders`, { method: "POST", body: "{}" });
    assert.equal(missing.status, 400);
    assert.equal(((await missing.json()) as { error: string }).error, "missing_key");
    // Route `api` (a GET) does not enable it: no idempotency key needed there.
    const elsewhere = await fetch(`${url}/orders`, { headers: { "x-tenant": "acme" } });
    assert.equal(elsewhere.status, 200);
    await elsewhere.text();
  });

  it("writes one access log line per request, with the route and the cluster", async () => {
    logs.length = 0;
    await (await fetch(`${url}/orders?x=1`, { headers: { "x-tenant": "acme" } })).text();
    const lines = logs.filter((line) => line.includes('"GET /orders?x=[redacted] HTTP/1.1"'));
    assert.equal(lines.length, 1, logs.join("\n"));
    assert.match(
      lines[0],
      /^\[\d{4}-\d\d-\d\dT[^\]]+\] "GET \/orders\?x=\[redacted\] HTTP\/1\.1" 200 route=api cluster=upstream \d+ \d+ms$/,
    );
  });

  it("answers 503 when the cluster cannot be reached, like Envoy's router", async () => {
    const down = await startGateway(loadGatewayConfig(`${ROOT}envoy/envoy.yaml`, {}), {
      clusters: { upstream: "127.0.0.1:1" },
      listen: { ingress: "127.0.0.1:0" },
      files: FILES,
      log: () => {},
    });
    try {
      const res = await fetch(`${down.urls.ingress}/orders`, { headers: { "x-tenant": "acme" } });
      assert.equal(res.status, 503);
      assert.match(await res.text(), /^upstream connect error or disconnect\/reset before headers/);
    } finally {
      await down.stop();
    }
  });
});

describe("virtual host choice by the Host header", () => {
  const vh = (name: string, ...domains: string[]) => ({
    name,
    domains,
    routes: [{ name, headers: [], cluster: "c", requestHeadersToAdd: [], enables: [], timeoutMs: 0 }],
  });
  const listener = {
    name: "l",
    address: "127.0.0.1",
    port: 0,
    bufferLimitBytes: 0,
    filters: [],
    virtualHosts: [
      vh("any", "*"),
      vh("prefix-short", "api.*"),
      vh("prefix-long", "api.shop.*"),
      vh("suffix-short", "*.com"),
      vh("suffix-long", "*.shop.com"),
      vh("dash", "*-bar.foo.com"),
      vh("exact", "api.shop.com"),
    ],
  };
  const chosen = (host: string) => virtualHostRoutes(listener, host)?.[0].name;
  it("takes an exact domain, then the longest suffix wildcard, then the longest prefix one, then *", () => {
    const cases: [string, string][] = [
      ["api.shop.com", "exact"],
      ["API.Shop.com:10000", "exact"],
      ["www.shop.com", "suffix-long"],
      ["x.com", "suffix-short"],
      ["api.shop.org", "prefix-long"],
      ["api.other.org", "prefix-short"],
      ["baz-bar.foo.com", "dash"],
      ["-bar.foo.com", "suffix-short"], // the wildcard does not match the empty string
      ["example.org", "any"],
    ];
    for (const [host, name] of cases) assert.equal(chosen(host), name, host);
    assert.equal(virtualHostRoutes({ ...listener, virtualHosts: [vh("only", "a.com")] }, "b.com"), null);
  });
});

describe("route matching by pseudo-headers", () => {
  const route = (name: string, header: string, exact: string) => ({
    name,
    prefix: "/",
    headers: [{ name: header, exact }],
    cluster: "c",
    requestHeadersToAdd: [],
    enables: [],
    timeoutMs: 0,
  });
  const routes = [
    route("put", ":method", "PUT"),
    route("health", ":path", "/health"),
    route("shop", ":authority", "shop.example:8080"),
    route("tls", ":scheme", "https"),
    route("plain", ":scheme", "http"),
  ];
  it("matches :method, :path, :authority (the Host header) and :scheme (http here) like Envoy", () => {
    const chosen = (method: string, path: string, host: string) =>
      matchRoute(routes, method, path, { host })?.name;
    assert.equal(chosen("PUT", "/x", "a"), "put");
    assert.equal(chosen("GET", "/health", "a"), "health");
    assert.equal(chosen("GET", "/x", "shop.example:8080"), "shop");
    assert.equal(chosen("GET", "/x", "other"), "plain", "never https on the gateway");
  });
});

describe("gateway on someone else's envoy.yaml", () => {
  const yaml = (route: string) => gatewayYaml({ routes: route, clusters: { backend: echoPort } });

  it("serves exact paths and header matches, adds headers, answers 404 where no route matches", async () => {
    const route = `- name: health
                          match: { path: "/health", headers: [{ name: x-probe, string_match: { exact: "yes" } }] }
                          route: { cluster: backend }
                          request_headers_to_add: [{ header: { key: x-via, value: gateway } }]`;
    const gateway = await startGateway(parseGatewayConfig(yaml(route), {}), { log: () => {} });
    try {
      const hit = await fetch(`${gateway.urls.web}/health?full=1`, { headers: { "x-probe": "yes" } });
      const text = await hit.text();
      assert.equal(text.split("\n")[0], "GET /health?full=1");
      assert.equal(echoed(text, "x-via"), "gateway");
      assert.equal((await fetch(`${gateway.urls.web}/health`)).status, 404, "header condition not met");
      assert.equal((await fetch(`${gateway.urls.web}/other`)).status, 404);
    } finally {
      await gateway.stop();
    }
  });

  it("hands one filter's shared context to the next filter and to the router's header formatters", async () => {
    const wasmEntry = (name: string, configuration: object) => `
                  - name: ${name}
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                      config:
                        name: ${name}
                        root_id: envoy_kvm
                        allow_on_headers_stop_iteration: true
                        failure_policy: FAIL_CLOSED
                        vm_config:
                          vm_id: gateway-test-${name}
                          runtime: envoy.wasm.runtime.v8
                          code: { local: { filename: /etc/envoy/kvm_filter.wasm } }
                        configuration:
                          "@type": type.googleapis.com/google.protobuf.StringValue
                          value: '${JSON.stringify(configuration)}'`;
    // The first filter writes a default into the shared context; the second reads it into a header.
    const first = {
      kvm_name: "plans",
      operation_type: "get",
      key_source_type: "literal",
      key_source_name: "acme",
      output_destination_type: "shared_context",
      output_destination_name: "plan",
      default_value: "free",
    };
    const second = {
      kvm_name: "unused",
      operation_type: "put",
      key_source_type: "literal",
      key_source_name: "seen",
      value_source_type: "shared_context",
      value_source_name: "plan",
    };
    const third = {
      kvm_name: "unused",
      operation_type: "get",
      key_source_type: "literal",
      key_source_name: "seen",
      output_destination_type: "header",
      output_destination_name: "x-seen",
    };
    const route = `- name: all
                          match: { prefix: "/" }
                          route: { cluster: backend }
                          request_headers_to_add: [{ header: { key: x-plan, value: "%FILTER_STATE(wasm.plan:PLAIN)%" } }]`;
    const text = gatewayYaml({
      routes: route,
      filters: wasmEntry("one", first) + wasmEntry("two", { operations: [second, third] }),
      clusters: { backend: echoPort },
    });
    const gateway = await startGateway(parseGatewayConfig(text, {}), {
      files: { "/etc/envoy/kvm_filter.wasm": `${ROOT}build/kvm_filter.wasm` },
      log: () => {},
    });
    try {
      const echoedText = await (await fetch(`${gateway.urls.web}/x`)).text();
      assert.equal(echoed(echoedText, "x-plan"), "free", "the router formats the filter state");
      assert.equal(
        echoed(echoedText, "x-seen"),
        "free",
        "the second filter read the first one's shared context",
      );
    } finally {
      await gateway.stop();
    }
  });

  it("answers 504 when the upstream is silent past the route's timeout; refuses a timeout it cannot read", async () => {
    const silent = createServer(() => {}); // accepts the request, never answers
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", () => resolve()));
    const timed = `- name: slow
                          match: { prefix: "/" }
                          route: { cluster: backend, timeout: 0.2s }`;
    const config = parseGatewayConfig(yaml(timed), {});
    assert.equal(config.listeners[0].virtualHosts[0].routes[0].timeoutMs, 200);
    const gateway = await startGateway(config, {
      clusters: { backend: `127.0.0.1:${(silent.address() as AddressInfo).port}` },
      log: () => {},
    });
    try {
      const res = await fetch(`${gateway.urls.web}/slow`);
      assert.equal(res.status, 504);
      assert.equal(await res.text(), "upstream request timeout");
    } finally {
      await gateway.stop();
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
    assert.throws(
      () => parseGatewayConfig(yaml(timed.replace("0.2s", "soon")), {}),
      /\.routes\[0\]\.route\.timeout: expected a duration such as "15s" or "0\.25s"$/,
    );
  });

  it("a TLS cluster (a converted https:// upstream) runs only once --cluster points it at a plain-HTTP address", async () => {
    const plain = `- name: plain
                          match: { prefix: "/" }
                          route: { cluster: backend }`;
    const tls = yaml(plain).replace(
      "      load_assignment:\n        cluster_name: backend",
      `      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: shop.example.com }
      load_assignment:
        cluster_name: backend`,
    );
    const config = parseGatewayConfig(tls, {});
    assert.deepEqual(config.clusters.get("backend")?.tls, { sni: "shop.example.com" });
    await assert.rejects(startGateway(config, { log: () => {} }), {
      message:
        "cluster backend: transport_socket TLS is not modelled by the local gateway (Envoy speaks TLS to it): " +
        "point it at a local plain-HTTP address with --cluster backend=host:port",
    });
    const gateway = await startGateway(config, {
      clusters: { backend: `127.0.0.1:${echoPort}` },
      log: () => {},
    });
    try {
      assert.equal((await fetch(`${gateway.urls.web}/x`)).status, 200);
    } finally {
      await gateway.stop();
    }
    assert.throws(
      () =>
        parseGatewayConfig(
          tls.replace("sni: shop.example.com", "sni: shop.example.com, common_tls_context: {}"),
          {},
        ),
      /\.transport_socket\.typed_config\.common_tls_context: not supported by the local gateway/,
    );
  });

  it("refuses a field that would change behaviour, naming its path; accepts the ones that would not", () => {
    const rewriting = `- name: rewrite
                          match: { prefix: "/" }
                          route: { cluster: backend, prefix_rewrite: "/v2/" }`;
    assert.throws(
      () => parseGatewayConfig(yaml(rewriting), {}),
      (err: Error) => {
        assert.ok(err instanceof GatewayConfigError);
        assert.equal(
          err.message,
          "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]" +
            ".routes[0].route.prefix_rewrite: not supported by the local gateway (it would change behaviour)",
        );
        return true;
      },
    );
    const plain = `- name: plain
                          match: { prefix: "/" }
                          route: { cluster: backend }`;
    assert.equal(parseGatewayConfig(yaml(plain), {}).listeners[0].virtualHosts[0].routes[0].name, "plain");
  });
});
