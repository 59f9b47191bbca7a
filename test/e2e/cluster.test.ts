// Both policies and the KVM service behind the cluster one, in plain HTTP against the gateway or
// Envoy (test/e2e/stack.ts): what each policy stores where, the cluster policy with the service up and
// with it down (the cluster kvm_service_down, which nothing serves), and the read-through cache.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { adminGet, adminPut, call, echoed, run, useStack } from "./stack.ts";

useStack();

describe("both policies", () => {
  it("local entries stay in the proxy's shared data; cluster entries are the KVM service's", async () => {
    const tenant = `policies-${run}`;
    await call(`/tenants/${tenant}`, {
      method: "PUT",
      headers: { "x-tenant": tenant },
      body: '{"plan":"gold"}',
    });
    assert.equal(
      echoed((await call("/", { headers: { "x-tenant": tenant } })).text, "x-tenant-plan"),
      "gold",
    );
    assert.equal(await adminGet("tenant-settings", tenant), undefined, "local: not in the KVM service");

    const user = `policies-${run}`;
    const put = await call(`/profiles/${user}`, {
      method: "PUT",
      headers: { "x-user": user },
      body: '{"contact":{"email":"bo@example.com"}}',
    });
    assert.equal(put.status, 200, put.text);
    assert.equal(await adminGet("profiles", user), "bo@example.com", "cluster: stored by the KVM service");
    await adminPut("profiles", user, "bo@example.org");
    const read = await call(`/profiles/${user}`, { headers: { "x-user": user } });
    assert.equal(read.headers.get("x-profile-email"), "bo@example.org", "and read from it");
  });
});

describe("the cluster policy with the KVM service up and down", () => {
  it("up: the value stored in the service", async () => {
    await adminPut("feature-flags", `up-${run}__checkout-v2`, "on");
    const answer = await call("/checkout", { headers: { "x-tenant": `up-${run}` } });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(echoed(answer.text, "x-feature-checkout-v2"), "on");
  });

  it("outage.json: down, a 503 naming the map before the upstream, or on with on_error_continue", async () => {
    const strict = await call("/outage/strict");
    assert.equal(strict.status, 503, strict.text);
    assert.equal(strict.headers.get("content-type"), "application/json");
    assert.deepEqual(
      { ...JSON.parse(strict.text), message: undefined },
      {
        error: "kvm_service_unreachable",
        message: undefined,
        kvm_name: "feature-flags",
        operation_type: "get",
      },
    );
    const lenient = await call("/outage/lenient");
    assert.equal(lenient.status, 200, lenient.text);
    assert.equal(lenient.text.split("\n")[0], "GET /outage/lenient", "the upstream answered");
    assert.equal(echoed(lenient.text, "x-maintenance"), undefined, "the failed get wrote nothing");
  });
});

describe("the read-through cache (feature-flags.json, cache_ttl 30)", () => {
  it("serves a value, and a miss, from the cache within cache_ttl although the service changed", async () => {
    const flag = (tenant: string) =>
      call("/checkout", { headers: { "x-tenant": tenant } }).then((a) =>
        echoed(a.text, "x-feature-checkout-v2"),
      );
    const hit = `cache-hit-${run}`;
    const miss = `cache-miss-${run}`;
    await adminPut("feature-flags", `${hit}__checkout-v2`, "on");
    assert.equal(await flag(hit), "on");
    assert.equal(await flag(miss), "off");

    await adminPut("feature-flags", `${hit}__checkout-v2`, "off");
    await adminPut("feature-flags", `${miss}__checkout-v2`, "on");
    assert.equal(await adminGet("feature-flags", `${hit}__checkout-v2`), "off");
    assert.equal(await flag(hit), "on", "the cached value");
    assert.equal(await flag(miss), "off", "the cached miss");
  });
});
