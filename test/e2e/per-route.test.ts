// Per-route configuration, both ways Envoy allows (docs/envoy-behaviour.md §7), in plain HTTP against
// the gateway or Envoy (test/e2e/stack.ts): the filter on every route whose `routes` map is keyed by
// route name, and a `disabled: true` filter switched on by one route's typed_per_filter_config
// (envoy.config.route.v3.FilterConfig).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { call, echoed, run, useStack } from "./stack.ts";

useStack();

describe("the routes map keyed by route name (kvm-tenant-settings, on every route)", () => {
  it("runs the operations of the route the request matched, and only those", async () => {
    const tenant = { "x-tenant": `per-route-${run}` };
    // Same prefix, a :method header matcher picks the route: PUT → tenant-settings-put (a put).
    const put = await call(`/tenants/per-route-${run}`, {
      method: "PUT",
      headers: tenant,
      body: '{"plan":"pro"}',
    });
    assert.equal(put.status, 200, put.text);
    assert.equal(echoed(put.text, "x-tenant-plan"), undefined, "no get on the put's route");
    // Route api (the catch-all) reads it into a header.
    assert.equal(echoed((await call("/anything", { headers: tenant })).text, "x-tenant-plan"), "pro");
    // Route checkout is not in the map: the filter runs there and does nothing.
    const checkout = await call("/checkout", { headers: tenant });
    assert.equal(checkout.status, 200, checkout.text);
    assert.equal(echoed(checkout.text, "x-tenant-plan"), undefined);
    // DELETE → tenant-settings-delete.
    assert.equal(
      (await call(`/tenants/per-route-${run}`, { method: "DELETE", headers: tenant })).status,
      200,
    );
    assert.equal(echoed((await call("/anything", { headers: tenant })).text, "x-tenant-plan"), "free");
  });
});

describe("a disabled filter enabled by one route (kvm-idempotency on orders-create)", () => {
  it("runs on the route that enables it and nowhere else", async () => {
    const body = '{"order":{"id":"o-1"}}';
    const tenant = { "x-tenant": `per-route-${run}` }; // route api's tenant-settings get needs it
    const enabled = await call("/orders", { method: "POST", body });
    assert.equal(enabled.status, 400, "orders-create enables it: the key is required");
    assert.equal(JSON.parse(enabled.text).kvm_name, "idempotency-keys");
    // The same path with GET matches route api, where the filter stays disabled.
    const other = await call("/orders", { headers: tenant });
    assert.equal(other.status, 200, other.text);
    assert.equal(other.text.split("\n")[0], "GET /orders");
    const elsewhere = await call("/invoices", { method: "POST", headers: tenant, body });
    assert.equal(elsewhere.status, 200, elsewhere.text);
    assert.equal(elsewhere.headers.get("x-original-order-id"), null);
  });
});
