// The plugin configuration shipped in envoy/envoy.yaml, run through the compiled filter with the
// requests its routes are meant for.
import { it } from "node:test";
import assert from "node:assert/strict";
import { envoyPluginConfiguration } from "../unit/envoy-yaml.ts";
import { send, startKvm } from "./support.ts";

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
