// Every example of envoy/plugins/ as its README shows it, in plain HTTP against the gateway or Envoy
// (test/e2e/stack.ts: GATEWAY_URL, KVM_URL, KVM_ADMIN_TOKEN; without GATEWAY_URL the local gateway
// on envoy/envoy.yaml). A test per plugin file (outage.json's is in cluster.test.ts); a check that none is missed.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { adminPut, call, echoed, eventually, run, useStack } from "./stack.ts";

useStack();

describe("envoy/plugins examples", () => {
  it("tenant-settings.json: a tenant's plan into a header, stored from a body field, deleted", async () => {
    const tenant = { "x-tenant": `acme-${run}` };
    assert.equal(echoed((await call("/orders", { headers: tenant })).text, "x-tenant-plan"), "free");
    const put = await call(`/tenants/acme-${run}`, {
      method: "PUT",
      headers: tenant,
      body: '{"plan":"gold"}',
    });
    assert.equal(put.status, 200, put.text);
    const read = await call("/orders", { headers: tenant });
    assert.equal(echoed(read.text, "x-tenant-plan"), "gold");
    assert.equal(read.headers.get("x-tenant-plan"), "gold");
    await call(`/tenants/acme-${run}`, { method: "DELETE", headers: tenant });
    assert.equal(echoed((await call("/orders", { headers: tenant })).text, "x-tenant-plan"), "free");
  });

  it("idempotency.json: the first order id is kept and shown on a replay; no key is a 400", async () => {
    const key = { "idempotency-key": `k-${run}` };
    const first = await call("/orders", { method: "POST", headers: key, body: '{"order":{"id":"o-1"}}' });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers.get("x-original-order-id"), null);
    const replay = await call("/orders", { method: "POST", headers: key, body: '{"order":{"id":"o-2"}}' });
    assert.equal(replay.headers.get("x-original-order-id"), "o-1");
    const missing = await call("/orders", { method: "POST", body: '{"order":{"id":"o-3"}}' });
    assert.equal(missing.status, 400);
    assert.equal(JSON.parse(missing.text).error, "missing_key");
  });

  it("kong-backend-timeout.json: the Kong example puts the value in the shared context", async () => {
    await adminPut("api-settings", "backend-timeout", "30");
    assert.equal(echoed((await call("/kong/anything")).text, "x-backend-timeout"), "30");
  });

  it("feature-flags.json: a per-tenant flag through the cache", async () => {
    const tenant = `acme-${run}`;
    await adminPut("feature-flags", `${tenant}__checkout-v2`, "on");
    const answer = await call("/checkout", { headers: { "x-tenant": tenant } });
    assert.equal(echoed(answer.text, "x-feature-checkout-v2"), "on");
    const other = await call("/checkout", { headers: { "x-tenant": `globex-${run}` } });
    assert.equal(echoed(other.text, "x-feature-checkout-v2"), "off");
  });

  it("sessions.json: a session kept 5 s; its user, found by one operation, is the next one's key", async () => {
    const session = { "x-session": `s-${run}` };
    await adminPut("user-roles", `ann-${run}`, "admin");
    const login = await call("/sessions", {
      method: "POST",
      headers: { ...session, "x-user": `ann-${run}` },
    });
    assert.equal(login.status, 200, login.text);
    const whoami = () => call("/whoami", { headers: session });
    const during = await whoami();
    assert.equal(echoed(during.text, "x-session-user"), `ann-${run}`, "the shared context, as filter state");
    assert.equal(echoed(during.text, "x-user-role"), "admin", "the cluster get keyed by the shared context");
    const expired = await eventually(whoami, (a) => echoed(a.text, "x-session-user") === "anonymous", 10);
    assert.equal(echoed(expired.text, "x-session-user"), "anonymous", "the session's ttl (5 s) ran out");
    assert.equal(echoed(expired.text, "x-user-role"), "guest");
  });

  it("profiles.json: a JSON body field stored in the KVM service and read back", async () => {
    const user = { "x-user": `ann-${run}` };
    const put = await call(`/profiles/ann-${run}`, {
      method: "PUT",
      headers: user,
      body: '{"contact":{"email":"ann@example.com"}}',
    });
    assert.equal(put.status, 200, put.text);
    const read = await call(`/profiles/ann-${run}`, { headers: user });
    assert.equal(read.headers.get("x-profile-email"), "ann@example.com");
  });

  it("covers every file in envoy/plugins/", () => {
    const dir = fileURLToPath(new URL("../../envoy/plugins/", import.meta.url));
    const here = fileURLToPath(new URL(".", import.meta.url));
    const titles = readdirSync(here)
      .filter((f) => f.endsWith(".test.ts"))
      .map((f) => readFileSync(`${here}${f}`, "utf8"))
      .join("\n");
    const tested = new Set([...titles.matchAll(/it\("([a-z-]+\.json):/g)].map((m) => m[1]));
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
      assert.ok(tested.has(file), `no e2e test for envoy/plugins/${file}`);
    }
  });
});
