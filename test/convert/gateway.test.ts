// The Kong sample, converted with --policy local, on the local gateway: the envoy.yaml fragment `convert --envoy`
// writes, placed in a listener, serves the deck file's routes with the filter as Kong's plugin documents them.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { parse, stringify } from "yaml";
import { createEchoServer } from "../../gateway/echo-upstream.ts";
import { parseGatewayConfig } from "../../gateway/config.ts";
import { startGateway, type RunningGateway } from "../../gateway/server.ts";
import { convertKong } from "../../convert/kong.ts";
import { envoyFragment } from "../../convert/output.ts";
import { root } from "./support.ts";

/** A header line of the echo upstream's answer (`name: value` lines before a blank line). */
function echoed(text: string, name: string): string | undefined {
  return text
    .split("\n\n", 1)[0]
    .split("\n")
    .find((line) => line.startsWith(`${name}: `))
    ?.slice(name.length + 2);
}

describe("convert kong → envoy.yaml fragment → local gateway", () => {
  let echo: Server;
  let gateway: RunningGateway;
  let url: string;

  before(async () => {
    echo = createEchoServer();
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
    const echoAt = `127.0.0.1:${(echo.address() as AddressInfo).port}`;
    process.chdir(root);
    const conversion = convertKong("examples/kong/kong.yaml", { policy: "local" });
    const configText = `${JSON.stringify(conversion.config, null, 2)}\n`;
    const fragment = parse(
      envoyFragment(conversion, configText, {
        source: "kong",
        upstream: "upstream",
        clusters: conversion.clusters,
      }),
    );
    const envoyYaml = stringify({
      static_resources: {
        listeners: [
          {
            name: "ingress",
            address: { socket_address: { address: "127.0.0.1", port_value: 10000 } },
            filter_chains: [
              {
                filters: [
                  {
                    name: "envoy.filters.network.http_connection_manager",
                    typed_config: {
                      "@type":
                        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                      stat_prefix: "ingress",
                      route_config: fragment.route_config,
                      http_filters: fragment.http_filters,
                    },
                  },
                ],
              },
            ],
          },
        ],
        clusters: fragment.clusters,
      },
    });
    gateway = await startGateway(parseGatewayConfig(envoyYaml, {}), {
      clusters: Object.fromEntries(Object.keys(conversion.clusters).map((name) => [name, echoAt])),
      listen: { ingress: "127.0.0.1:0" },
      files: { "/etc/envoy/kvm_filter.wasm": `${root}build/kvm_filter.wasm` },
      log: () => {},
    });
    url = gateway.urls.ingress;
  });
  after(async () => {
    await gateway?.stop();
    echo.closeAllConnections();
    await new Promise((resolve) => echo.close(resolve));
  });

  it("put, get with default_value and delete on the tenant routes; two VMs share the store", async () => {
    const read = async () =>
      echoed(
        await (await fetch(`${url}/tenants`, { headers: { "x-tenant": "acme" } })).text(),
        "x-tenant-plan",
      );
    assert.equal(await read(), "free");
    const put = await fetch(`${url}/tenants`, {
      method: "PUT",
      headers: { "x-tenant": "acme" },
      body: '{"plan":"gold"}',
    });
    assert.equal(put.status, 200);
    await put.text();
    assert.equal(await read(), "gold");
    assert.equal(await read(), "gold");
    await (await fetch(`${url}/tenants`, { method: "DELETE", headers: { "x-tenant": "acme" } })).text();
    assert.equal(await read(), "free");
  });

  it("the status route runs the global get: a miss adds no response header and the request reaches its service", async () => {
    const status = await fetch(`${url}/status`);
    assert.equal(status.status, 200);
    assert.equal(status.headers.get("x-maintenance"), null);
    assert.equal((await status.text()).split("\n")[0], "GET /status");
  });
});
