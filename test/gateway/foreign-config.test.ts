// An envoy.yaml written by someone else, using only the fields the gateway supports, runs on
// `envoy-kvm gateway --config` (the real command, in a child process): its own listener, virtual host,
// route, cluster, filter, VM and file names; a headers matcher; the routes map keyed by its route names;
// a disabled filter switched on per route by typed_per_filter_config. The same file with one routing
// field the gateway does not model stops the start with exit 1, naming the field.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createEchoServer } from "../../gateway/echo-upstream.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = `${ROOT}bin/envoy-kvm.js`;

const cart = {
  routes: {
    "cart-add": [
      {
        kvm_name: "carts",
        operation_type: "put",
        key_source_type: "header",
        key_source_name: "x-cart",
        value_source_type: "header",
        value_source_name: "x-item",
        ttl: 600,
      },
    ],
    "cart-show": [
      {
        kvm_name: "carts",
        operation_type: "get",
        key_source_type: "header",
        key_source_name: "x-cart",
        output_destination_type: "response_header",
        output_destination_name: "x-cart-item",
        default_value: "empty",
      },
    ],
  },
};
const banner = {
  routes: {
    "catch-all": [
      {
        kvm_name: "banners",
        operation_type: "get",
        key_source_type: "literal",
        key_source_name: "home",
        output_destination_type: "header",
        output_destination_name: "x-banner",
        default_value: "none",
      },
    ],
  },
};

const wasm = (name: string, configuration: object, disabled: boolean) => `
                  - name: ${name}
                    disabled: ${disabled}
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                      config:
                        name: ${name}
                        root_id: envoy_kvm
                        allow_on_headers_stop_iteration: true
                        failure_policy: FAIL_CLOSED
                        vm_config:
                          vm_id: shop
                          runtime: envoy.wasm.runtime.v8
                          code: { local: { filename: /opt/shop/filters/kvm.wasm } }
                        configuration:
                          "@type": type.googleapis.com/google.protobuf.StringValue
                          value: '${JSON.stringify(configuration)}'`;

const shopYaml = (backendPort: number, cartShowRoute = "route: { cluster: shop_backend }") => `
node: { id: shop-edge, cluster: shop }
admin:
  access_log_path: /dev/null
  address: { socket_address: { address: 127.0.0.1, port_value: 19000 } }
static_resources:
  listeners:
    - name: public_http
      address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: public
                codec_type: AUTO
                route_config:
                  name: shop_routes
                  virtual_hosts:
                    - name: storefront
                      domains: ["*"]
                      routes:
                        - name: cart-add
                          match:
                            prefix: /cart
                            headers:
                              - { name: ":method", string_match: { exact: POST } }
                              - { name: x-api-version, string_match: { exact: "2" } }
                          route: { cluster: shop_backend, timeout: 5s }
                          typed_per_filter_config:
                            cart-store:
                              "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                              config: {}
                        - name: cart-show
                          match: { prefix: /cart }
                          ${cartShowRoute}
                          typed_per_filter_config:
                            cart-store:
                              "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                              config: {}
                        - name: catch-all
                          match: { prefix: / }
                          route: { cluster: shop_backend }
                http_filters:${wasm("home-banner", banner, false)}${wasm("cart-store", cart, true)}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: shop_backend
      type: STATIC
      connect_timeout: 0.5s
      lb_policy: ROUND_ROBIN
      load_assignment:
        cluster_name: shop_backend
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address: { socket_address: { address: 127.0.0.1, port_value: ${backendPort} } }
`;

let dir: string;
let echo: Server;
let echoPort: number;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "kvm-foreign-yaml-"));
  echo = createEchoServer();
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  echoPort = (echo.address() as AddressInfo).port;
});
after(async () => {
  echo.closeAllConnections();
  await new Promise((resolve) => echo.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const gatewayArgs = (file: string) => [
  BIN,
  "gateway",
  "--config",
  file,
  "--file",
  `/opt/shop/filters/kvm.wasm=${ROOT}build/kvm_filter.wasm`,
];

describe("someone else's envoy.yaml on `envoy-kvm gateway`", () => {
  let gateway: ChildProcess;
  let url: string;
  let output = "";
  before(async () => {
    const file = path.join(dir, "shop.yaml");
    writeFileSync(file, shopYaml(echoPort));
    gateway = spawn(process.execPath, gatewayArgs(file));
    gateway.stdout!.on("data", (d) => (output += d));
    gateway.stderr!.on("data", (d) => (output += d));
    url = await new Promise<string>((resolve, reject) => {
      gateway.stdout!.on("data", () => {
        const found = /^gateway listener public_http on (http:\/\/\S+)$/m.exec(output);
        if (found) resolve(found[1]);
      });
      gateway.on("close", (code) => reject(new Error(`gateway exited (${code}):\n${output}`)));
    });
  });
  after(async () => {
    if (gateway.exitCode === null) {
      gateway.kill("SIGTERM");
      await once(gateway, "close");
    }
  });

  it("routes by its headers matcher and runs its disabled filter on the routes that enable it", async () => {
    const show = () => fetch(`${url}/cart`, { headers: { "x-cart": "c-1" } });
    const empty = await show();
    assert.equal(empty.status, 200, await empty.text());
    assert.equal(empty.headers.get("x-cart-item"), "empty");

    // POST without x-api-version: 2 fails the headers matcher, so it is cart-show: nothing is stored.
    const v1 = await fetch(`${url}/cart`, { method: "POST", headers: { "x-cart": "c-1", "x-item": "pen" } });
    assert.equal(v1.headers.get("x-cart-item"), "empty");
    const added = await fetch(`${url}/cart`, {
      method: "POST",
      headers: { "x-cart": "c-1", "x-item": "book", "x-api-version": "2" },
    });
    assert.equal(added.status, 200, await added.text());
    assert.equal(added.headers.get("x-cart-item"), null, "cart-add has no get");
    assert.equal((await show()).headers.get("x-cart-item"), "book");
  });

  it("runs its always-on filter's routes map on the route named there only", async () => {
    const home = await (await fetch(`${url}/`)).text();
    assert.equal(home.split("\n")[0], "GET /");
    assert.ok(home.includes("\nx-banner: none\n"), home);
    const cartPage = await (await fetch(`${url}/cart`, { headers: { "x-cart": "c-2" } })).text();
    assert.ok(!cartPage.includes("x-banner"), cartPage);
  });

  it("logs a line per request and stops on TERM", async () => {
    assert.match(output, /route=catch-all cluster=shop_backend/);
    gateway.kill("SIGTERM");
    const [code] = await once(gateway, "close");
    assert.equal(code, 0);
    assert.equal(output.trimEnd().split("\n").at(-1), "envoy-kvm gateway stopped");
  });
});

describe("the same envoy.yaml with a routing field the gateway does not model", () => {
  it("stops the start with exit 1, naming the field", () => {
    const file = path.join(dir, "shop-rewrite.yaml");
    writeFileSync(file, shopYaml(echoPort, 'route: { cluster: shop_backend, prefix_rewrite: "/basket" }'));
    const result = spawnSync(process.execPath, gatewayArgs(file), { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.status, 1, result.stdout + result.stderr);
    assert.equal(
      result.stderr,
      "envoy-kvm: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config" +
        ".virtual_hosts[0].routes[1].route.prefix_rewrite: not supported by the local gateway (it would change behaviour)\n",
    );
    assert.doesNotMatch(result.stdout, /gateway listener/);
  });
});
