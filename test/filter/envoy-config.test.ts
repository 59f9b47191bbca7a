// The plugin configurations shipped in envoy/envoy.yaml (= envoy/plugins/*.json), run through the
// compiled filter: each one loads, and the local-policy examples do what envoy/plugins/README.md
// shows with the requests their routes are meant for.
import { it } from "node:test";
import assert from "node:assert/strict";
import { envoyPluginConfiguration, pluginFiles, wasmFilters } from "../unit/envoy-yaml.ts";
import { send, startKvm } from "./support.ts";

it("every plugin configuration in envoy.yaml loads into the compiled filter", async () => {
  for (const { config } of wasmFilters) {
    const plugin = await startKvm(config.configuration.value);
    assert.equal(plugin.workers.length, 1, config.name);
  }
});

it("envoy.yaml's example: put a tenant's plan from the body, read it back on every API call", async () => {
  const plugin = await startKvm(envoyPluginConfiguration);
  const w = plugin.worker();
  const before = await send(w, { path: "/orders", routeName: "api", headers: [["x-tenant", "acme"]] });
  assert.equal(before.upstreamHeader("x-tenant-plan"), "free");
  const put = await send(w, {
    method: "PUT",
    path: "/tenants/acme",
    routeName: "tenant-settings-put",
    headers: [["x-tenant", "acme"]],
    body: '{"plan":"gold"}',
  });
  assert.equal(put.status, 200, put.body.toString());
  const after = await send(w, { path: "/orders", routeName: "api", headers: [["x-tenant", "acme"]] });
  assert.equal(after.upstreamHeader("x-tenant-plan"), "gold");
  assert.equal(after.responseHeader("x-tenant-plan"), "gold");
  await send(w, {
    method: "DELETE",
    path: "/tenants/acme",
    routeName: "tenant-settings-delete",
    headers: [["x-tenant", "acme"]],
  });
  assert.equal(
    (await send(w, { path: "/", routeName: "api", headers: [["x-tenant", "acme"]] })).upstreamHeader(
      "x-tenant-plan",
    ),
    "free",
  );
});

it("idempotency.json: the first order id is kept for its key and shown on a replay", async () => {
  const plugin = await startKvm(pluginFiles.idempotency);
  const w = plugin.worker();
  const order = (id: string, key = "k-1") =>
    send(w, {
      method: "POST",
      path: "/orders",
      routeName: "orders-create",
      headers: [["idempotency-key", key]],
      body: JSON.stringify({ order: { id } }),
    });
  const first = await order("o-1");
  assert.equal(first.status, 200);
  assert.equal(first.responseHeader("x-original-order-id"), undefined);
  const replay = await order("o-2");
  assert.equal(replay.responseHeader("x-original-order-id"), "o-1", "override: false kept the first");
  assert.equal((await order("o-3", "k-2")).responseHeader("x-original-order-id"), undefined);
  const missing = await send(w, { method: "POST", path: "/orders", routeName: "orders-create", body: "{}" });
  assert.equal(missing.status, 400);
  assert.equal(missing.json().error, "missing_key");
});
