// envoy/envoy.yaml, checked statically (no Envoy binary runs here): the wasm filter is wired the
// way the filter needs, its plugin configuration is valid and names real routes, and the stats_tags
// turn the filter's counter names into labels the way Envoy's tag extractors would.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import { ROOT_ID, envoy, hcm, root, routeNames, wasm, envoyPluginConfiguration } from "./envoy-yaml.ts";

describe("envoy/envoy.yaml", () => {
  it("runs the filter under its root id, with the flag body operations need, before the router", () => {
    assert.equal(wasm.root_id, ROOT_ID);
    assert.equal(wasm.allow_on_headers_stop_iteration, true);
    assert.equal(wasm.vm_config.runtime, "envoy.wasm.runtime.v8");
    assert.match(wasm.vm_config.code.local.filename, /^\/.+\.wasm$/, "Envoy needs an absolute path");
    assert.equal(hcm.http_filters.at(-1).name, "envoy.filters.http.router");
  });

  it("carries a plugin configuration the schema accepts, keyed by route names that exist", () => {
    const schema = JSON.parse(readFileSync(`${root}schema/plugin-config.schema.json`, "utf8"));
    const config = JSON.parse(envoyPluginConfiguration) as { routes?: Record<string, unknown> };
    const validate = new Ajv().compile(schema);
    assert.ok(validate(config), JSON.stringify(validate.errors));
    for (const name of Object.keys(config.routes ?? {}))
      assert.ok(routeNames.includes(name), `no route named ${name}`);
  });

  it("stats_tags lift policy, operation, result and kvm_name out of the counter names", () => {
    // Envoy's TagExtractorImpl: each regex runs on the full name; the first capture group is
    // removed from the name, the second (or the first, if alone) is the tag value.
    const extract = (name: string) => {
      const tags: Record<string, string> = {};
      const removed: [number, number][] = [];
      for (const { tag_name, regex } of envoy.stats_config.stats_tags) {
        const m = new RegExp(regex, "d").exec(name);
        if (!m) continue;
        tags[tag_name] = m[2] ?? m[1];
        removed.push(m.indices![1]!);
      }
      let rest = "";
      for (let i = 0; i < name.length; i++) if (!removed.some(([s, e]) => i >= s && i < e)) rest += name[i];
      return { rest, tags };
    };
    // Envoy names a wasm metric wasmcustom.<name> (context.cc defineMetric) and extracts tags from
    // that full name; the namespace is dropped only on output.
    assert.deepEqual(extract("wasmcustom.envoy_kvm.local.get.hit.api.v1-settings"), {
      rest: "wasmcustom.envoy_kvm",
      tags: { kvm_policy: "local", kvm_operation: "get", kvm_result: "hit", kvm_name: "api.v1-settings" },
    });
    assert.deepEqual(extract("wasmcustom.envoy_kvm.cluster.delete.error.x").tags, {
      kvm_policy: "cluster",
      kvm_operation: "delete",
      kvm_result: "error",
      kvm_name: "x",
    });
    for (const result of ["cache_hit", "cache_revalidated", "callout_5xx", "callout_timeout", "callout_ms"]) {
      assert.deepEqual(extract(`wasmcustom.envoy_kvm.cluster.get.${result}.tenant-settings`), {
        rest: "wasmcustom.envoy_kvm",
        tags: {
          kvm_policy: "cluster",
          kvm_operation: "get",
          kvm_result: result,
          kvm_name: "tenant-settings",
        },
      });
    }
    assert.deepEqual(extract("cluster.upstream.upstream_rq_total").tags, {});
    // The bare name (without the namespace Envoy adds) is not what Envoy matches against.
    assert.deepEqual(extract("envoy_kvm.local.get.hit.x").tags, {});
  });
});
