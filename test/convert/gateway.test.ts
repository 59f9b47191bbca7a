// The converted samples on the local gateway, as users run them: `convert --envoy` writes an envoy.yaml fragment
// (route_config, http_filters, clusters); placed in a listener it serves the converted routes — prefix, path and
// safe_regex (RE2) matches — with the filter, and `cluster` maps go to the real KVM service on PostgreSQL. Each
// request's outcome is the one the source product documents (Apigee's KeyValueMapOperations reference, the Kong
// plugin's documentation).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import AdmZip from "adm-zip";
import { parse } from "yaml";
import { createEchoServer } from "../../gateway/echo-upstream.ts";
import { parseGatewayConfig } from "../../gateway/config.ts";
import { startGateway, type RunningGateway } from "../../gateway/server.ts";
import { startService, type RunningService } from "../e2e/helpers.ts";
import { bootstrap } from "../gateway/bootstrap.ts";
import { cli, cliAsync, root } from "./support.ts";

/** A header line of the echo upstream's answer (`name: value` lines before a blank line). */
function echoed(text: string, name: string): string | undefined {
  return text
    .split("\n\n", 1)[0]
    .split("\n")
    .find((line) => line.startsWith(`${name}: `))
    ?.slice(name.length + 2);
}

/** The echo upstream's request line: `METHOD path`. */
const requestLine = (text: string) => text.split("\n", 1)[0];

/**
 * Serves a `convert --envoy` fragment in a listener. `addHeaders` adds request_headers_to_add to named routes
 * (how a test sees a shared_context value: the router formats %FILTER_STATE%); `addresses` points the
 * fragment's clusters at local servers.
 */
async function serveFragment(
  fragmentText: string,
  addresses: Record<string, string>,
  addHeaders: Record<string, { key: string; value: string }> = {},
): Promise<RunningGateway> {
  const fragment = parse(fragmentText);
  for (const route of fragment.route_config.virtual_hosts[0].routes) {
    const header = addHeaders[route.name];
    if (header !== undefined) route.request_headers_to_add = [{ header }];
  }
  const envoyYaml = bootstrap({
    route_config: fragment.route_config,
    http_filters: fragment.http_filters,
    clusters: fragment.clusters,
  });
  const config = parseGatewayConfig(envoyYaml, {});
  assert.deepEqual(
    [...config.clusters.keys()].sort(),
    Object.keys(addresses).sort(),
    "the fragment defines every cluster its routes and callouts use",
  );
  return startGateway(config, {
    clusters: addresses,
    listen: { ingress: "127.0.0.1:0" },
    files: { "/etc/envoy/kvm_filter.wasm": `${root}build/kvm_filter.wasm` },
    log: () => {},
  });
}

let echo: Server;
let echoAt: string;
let service: RunningService;
let scratch: string;

before(async () => {
  echo = createEchoServer();
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  echoAt = `127.0.0.1:${(echo.address() as AddressInfo).port}`;
  service = await startService();
  scratch = mkdtempSync(join(tmpdir(), "convert-gateway-"));
});
after(async () => {
  await service?.close();
  echo.closeAllConnections();
  await new Promise((resolve) => echo.close(resolve));
  rmSync(scratch, { recursive: true, force: true });
});

/** An entry of the KVM service (its data-plane API): the value, or undefined on 404. */
async function entry(kvm: string, key: string): Promise<string | undefined> {
  const res = await fetch(`http://${service.address}/v1/kvms/${kvm}/entries/${encodeURIComponent(key)}`);
  const text = await res.text();
  if (res.status === 404) return undefined;
  assert.equal(res.status, 200, text);
  return text;
}

describe("convert kong (--policy local) → fragment → local gateway", () => {
  let gateway: RunningGateway;
  let url: string;

  before(async () => {
    const out = join(scratch, "kong-local.yaml");
    const r = cli([
      "convert",
      "kong",
      "examples/kong/kong.yaml",
      "--policy",
      "local",
      "-o",
      "/dev/null",
      "--envoy",
      out,
    ]);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    const addresses = { settings: echoAt, tenants: echoAt, status: echoAt };
    gateway = await serveFragment(readFileSync(out, "utf8"), addresses);
    url = gateway.urls.ingress;
  });
  after(() => gateway?.stop());

  /** The tenant-plan-put route: Kong's put stores the body's `plan` under the x-tenant header. */
  const putPlan = async (tenant: string, plan: string) => {
    const put = await fetch(`${url}/tenants`, {
      method: "PUT",
      headers: { "x-tenant": tenant },
      body: JSON.stringify({ plan }),
    });
    assert.equal(put.status, 200);
    await put.text();
  };

  it("put, get with default_value and delete on the tenant routes; two VMs share the store", async () => {
    const read = async () =>
      echoed(
        await (await fetch(`${url}/tenants`, { headers: { "x-tenant": "acme" } })).text(),
        "x-tenant-plan",
      );
    assert.equal(await read(), "free");
    await putPlan("acme", "gold");
    assert.equal(await read(), "gold");
    assert.equal(await read(), "gold");
    await (await fetch(`${url}/tenants`, { method: "DELETE", headers: { "x-tenant": "acme" } })).text();
    assert.equal(await read(), "free");
  });

  it("the regex path route (safe_regex, anchored at the start as Kong anchors it) answers the plan in a response header", async () => {
    const plan = async (path: string) => {
      const res = await fetch(`${url}${path}`, { headers: { "x-tenant": "umbrella" } });
      return [res.headers.get("x-tenant-plan"), requestLine(await res.text())];
    };
    assert.deepEqual(await plan("/v2/tenants/umbrella"), ["free", "GET /v2/tenants/umbrella"]);
    await putPlan("umbrella", "silver");
    assert.deepEqual(await plan("/v2/tenants/umbrella/profile?x=1"), [
      "silver",
      "GET /v2/tenants/umbrella/profile?x=1",
    ]);
    assert.deepEqual(
      await plan("/v2/tenants/Umbrella"),
      [null, "GET /v2/tenants/Umbrella"],
      "[a-z0-9-]+ does not take an upper-case letter: the status route (the global get, a miss) takes it",
    );
  });

  it("the status route runs the global get: a miss adds no response header and the request reaches its service", async () => {
    const status = await fetch(`${url}/status`);
    assert.equal(status.status, 200);
    assert.equal(status.headers.get("x-maintenance"), null);
    assert.equal(requestLine(await status.text()), "GET /status");
  });
});

describe("convert kong (as configured: the service instance is cluster) → fragment → gateway → KVM service", () => {
  it("the service-level get reads the KVM service into the shared context; cache_ttl serves the value read", async () => {
    const out = join(scratch, "kong-cluster.yaml");
    const r = cli(["convert", "kong", "examples/kong/kong.yaml", "-o", "/dev/null", "--envoy", out]);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /the fragment defines it at 127\.0\.0\.1:8081/);
    const gateway = await serveFragment(
      readFileSync(out, "utf8"),
      { settings: echoAt, tenants: echoAt, status: echoAt, kvm_service: service.address },
      { "settings-read": { key: "x-backend-timeout", value: "%FILTER_STATE(wasm.backend_timeout:PLAIN)%" } },
    );
    try {
      const read = async () => {
        const text = await (await fetch(`${gateway.urls.ingress}/settings`)).text();
        assert.equal(requestLine(text), "GET /settings");
        return echoed(text, "x-backend-timeout");
      };
      const put = (value: string) =>
        fetch(`http://${service.address}/v1/kvms/api-settings/entries/backend-timeout`, {
          method: "PUT",
          body: value,
        });
      assert.equal((await put("5000")).status, 201);
      assert.equal(await read(), "5000");
      assert.equal((await put("9000")).status, 200);
      assert.equal(await read(), "5000", "cache_ttl 30: the value read is served for 30 s");
    } finally {
      await gateway.stop();
    }
  });
});

describe("convert apigee (proxy bundle .zip, cluster maps) → fragment → gateway → KVM service", () => {
  let gateway: RunningGateway;
  let url: string;

  before(async () => {
    const zip = new AdmZip();
    zip.addLocalFolder(`${root}examples/apigee/orders-proxy/apiproxy`, "apiproxy");
    const bundle = join(scratch, "orders_rev3_2026_12_01.zip");
    zip.writeZip(bundle);
    const [config, fragment, seeds] = ["orders-kvm.json", "orders-envoy.yaml", "orders-seed"].map((f) =>
      join(scratch, f),
    );
    const r = cli(["convert", "apigee", bundle, "-o", config, "--envoy", fragment, "--import-dir", seeds]);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    const seed = join(seeds, "tenant-settings.json");
    const imported = await cliAsync([
      "kvm",
      "import",
      "tenant-settings",
      seed,
      "--mode",
      "insert",
      "--url",
      `http://${service.address}`,
    ]);
    assert.equal(imported.status, 0, imported.stdout + imported.stderr);
    // The fragment's upstream is the TargetEndpoint's URL; the test points it, and kvm_service, at local servers.
    gateway = await serveFragment(readFileSync(fragment, "utf8"), {
      upstream: echoAt,
      kvm_service: service.address,
    });
    url = gateway.urls.ingress;
  });
  after(() => gateway?.stop());

  const send = async (method: string, path: string, headers: Record<string, string>, body?: string) => {
    const res = await fetch(`${url}${path}`, { method, headers, body });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return text;
  };

  it("PreFlow Get: the composite key <x-tenant>__plan reads the InitialEntries seed into the request header; a miss leaves it unset", async () => {
    const hit = await send("GET", "/v1/orders/17", { "x-tenant": "acme" });
    assert.equal(requestLine(hit), "GET /v1/orders/17");
    assert.equal(echoed(hit, "x-tenant-plan"), "gold");
    const miss = await send("GET", "/v1/orders/17", { "x-tenant": "globex" });
    assert.equal(echoed(miss, "x-tenant-plan"), undefined);
  });

  it('POST flow: Put without override keeps the first idempotency key\'s value; Put override="true" replaces the last order from the JSON body', async () => {
    const order = (id: string) => JSON.stringify({ order: { id } });
    await send(
      "POST",
      "/v1/orders",
      { "x-tenant": "acme", "x-user": "ann", "idempotency-key": "k1" },
      order("o-1"),
    );
    await send(
      "POST",
      "/v1/orders",
      { "x-tenant": "acme", "x-user": "bob", "idempotency-key": "k1" },
      order("o-2"),
    );
    await send(
      "POST",
      "/v1/orders",
      { "x-tenant": "acme", "x-user": "ann", "idempotency-key": "k2" },
      order("o-3"),
    );
    assert.equal(await entry("orders.idempotency-keys", "k1"), "ann", "Apigee's override defaults to false");
    assert.equal(await entry("orders.idempotency-keys", "k2"), "ann");
    assert.equal(await entry("last-order", "ann"), "o-3");
    assert.equal(await entry("last-order", "bob"), "o-2");
  });

  it('GET /last (a path condition and a verb): the Get assigns the query parameter; DELETE /{id} (MatchesPath "/*", safe_regex) deletes; a deeper path does not take the flow', async () => {
    await send(
      "POST",
      "/v1/orders",
      { "x-tenant": "acme", "x-user": "cy", "idempotency-key": "k9" },
      '{"order":{"id":"o-9"}}',
    );
    const last = await send("GET", "/v1/orders/last", { "x-tenant": "acme", "x-user": "cy" });
    assert.equal(requestLine(last), "GET /v1/orders/last?last_order=o-9");

    await send("DELETE", "/v1/orders/o-9/items", { "x-tenant": "acme", "x-user": "cy" });
    assert.equal(
      await entry("last-order", "cy"),
      "o-9",
      '"/*" is one path segment: the default route, no Delete',
    );

    const deleted = await send("DELETE", "/v1/orders/o-9", { "x-tenant": "acme", "x-user": "cy" });
    assert.equal(requestLine(deleted), "DELETE /v1/orders/o-9");
    assert.equal(await entry("last-order", "cy"), undefined);
    const after = await send("GET", "/v1/orders/last", { "x-tenant": "acme", "x-user": "cy" });
    assert.equal(
      requestLine(after),
      "GET /v1/orders/last",
      "a Delete through this Envoy drops the cached value",
    );
  });

  it("a Get into a flow variable (shared_context, keyed by a query parameter) feeds the next Get, which assigns a response header; a Put stores the whole body under a composite key", async () => {
    for (const [kvm, key, value] of [
      ["regions", "de", "eu-central"],
      ["region-notes", "eu-central", "GDPR applies"],
    ]) {
      const put = await fetch(`http://${service.address}/v1/kvms/${kvm}/entries/${key}`, {
        method: "PUT",
        body: value,
      });
      assert.equal(put.status, 201);
    }
    const res = await fetch(`${url}/v1/orders/regions/r1?country=de`, { headers: { "x-tenant": "acme" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-region-note"), "GDPR applies");
    assert.equal(requestLine(await res.text()), "GET /v1/orders/regions/r1?country=de");

    await send("PUT", "/v1/orders/notes?user=ann", { "x-tenant": "acme" }, "ring twice");
    assert.equal(await entry("order-notes", "ann__note"), "ring twice");
  });

  it('continueOnError="true": the Get whose key header is missing lets the request go on', async () => {
    const res = await send("GET", "/v1/orders/last", { "x-tenant": "acme" });
    assert.equal(requestLine(res), "GET /v1/orders/last");
  });
});
