// `config check`: the schema and the compiled filter judge a plugin configuration JSON or every envoy-kvm filter
// configuration of an envoy.yaml; failures print the line Envoy would log, with file:line, and exit 1.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkConfiguration } from "../../convert/check.ts";
import { configCases } from "../filter/config-cases.ts";
import { cli, root } from "./support.ts";

let scratch: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), "config-check-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const envoyYaml = readFileSync(`${root}test/convert/fixtures/envoy.yaml`, "utf8");
/** 1-based line of the first line containing `text`. */
const lineOf = (text: string, needle: string) => text.split("\n").findIndex((l) => l.includes(needle)) + 1;

describe("checkConfiguration agrees with the filter and the schema on every case of the shared table", () => {
  it("accepts the accepted and rejects the rejected, with the filter's own line", async () => {
    for (const c of configCases) {
      const text = typeof c.config === "string" ? c.config : JSON.stringify(c.config);
      const verdict = await checkConfiguration(text);
      assert.equal(verdict.ok, c.error === null, c.name);
      assert.deepEqual(verdict.filter, c.error === null ? [] : [`invalid configuration: ${c.error}`], c.name);
      assert.equal(verdict.schema.length === 0, c.error === null, `${c.name}: ${verdict.schema.join("; ")}`);
    }
  });
});

describe("envoy-kvm config check", () => {
  it("a valid plugin configuration JSON: ok, exit 0", () => {
    const file = join(scratch, "ok.json");
    writeFileSync(
      file,
      JSON.stringify({
        operations: [
          { kvm_name: "m", operation_type: "delete", key_source_type: "literal", key_source_name: "k" },
        ],
      }),
    );
    assert.deepEqual(cli(["config", "check", file]), { status: 0, stdout: `${file}: ok\n`, stderr: "" });
  });

  it("an invalid one: the line Envoy logs and the schema's verdict, exit 1", () => {
    const file = join(scratch, "bad.json");
    writeFileSync(
      file,
      JSON.stringify({
        operations: [
          {
            kvm_name: "m",
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: "k",
            value_source_type: "literal",
            value_source_name: "v",
            ttl: -1,
          },
        ],
      }),
    );
    const r = cli(["config", "check", file]);
    assert.equal(r.status, 1);
    assert.equal(
      r.stdout,
      `${file}: invalid configuration: operations[0].ttl: must be a whole number ≥ 0\n${file}: schema: /operations/0/ttl must be >= 0\n`,
    );
  });

  it("an envoy.yaml: each envoy-kvm filter configuration, at its line", () => {
    const r = cli(["config", "check", "test/convert/fixtures/envoy.yaml"]);
    assert.equal(r.status, 0, r.stdout);
    assert.equal(r.stdout, `test/convert/fixtures/envoy.yaml:${lineOf(envoyYaml, "value: |")}: ok\n`);
  });

  it("envoy/envoy.yaml (every filter entry and per-route configuration) and every envoy/plugins/*.json pass", () => {
    const plugins = readdirSync(`${root}envoy/plugins`)
      .filter((f) => f.endsWith(".json"))
      .map((f) => `envoy/plugins/${f}`);
    assert.ok(plugins.length > 0);
    const r = cli(["config", "check", "envoy/envoy.yaml", ...plugins]);
    assert.equal(r.status, 0, r.stdout);
    const configurations = (
      readFileSync(`${root}envoy/envoy.yaml`, "utf8").match(/google\.protobuf\.StringValue/g) ?? []
    ).length;
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.filter((l) => /^envoy\/envoy\.yaml:\d+: ok$/.test(l)).length, configurations);
    assert.deepEqual(
      lines.filter((l) => l.startsWith("envoy/plugins/")),
      plugins.map((p) => `${p}: ok`),
    );
  });

  it("an envoy.yaml whose configuration the filter rejects: file:line and the message; other root ids ignored; per-route configs checked", () => {
    const file = join(scratch, "envoy.yaml");
    const broken = envoyYaml.replace('"ttl": 3600', '"ttl": -5');
    // A per-route copy of the filter (typed_per_filter_config) with its own configuration, and another wasm filter.
    const perRoute = broken.replace(
      "route: { cluster: upstream }\n                        - name: tenant-settings-delete",
      [
        "route: { cluster: upstream }",
        "                          typed_per_filter_config:",
        "                            envoy.filters.http.wasm:",
        '                              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
        "                              config:",
        "                                root_id: envoy_kvm",
        "                                configuration:",
        '                                  "@type": type.googleapis.com/google.protobuf.StringValue',
        "                                  value: '{\"operations\": []}'",
        "                        - name: other",
        "                          match: { prefix: /other }",
        "                          route: { cluster: upstream }",
        "                          typed_per_filter_config:",
        "                            other.wasm:",
        '                              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
        "                              config: { root_id: someone_else, configuration: { value: nonsense } }",
        "                        - name: tenant-settings-delete",
      ].join("\n"),
    );
    assert.notEqual(perRoute, broken);
    writeFileSync(file, perRoute);
    const r = cli(["config", "check", file]);
    assert.equal(r.status, 1);
    const routeLine = lineOf(perRoute, "value: '{\"operations\": []}'");
    const mainLine = lineOf(perRoute, "value: |");
    assert.equal(
      r.stdout,
      [
        `${file}:${routeLine}: invalid configuration: configuration: has no operations (give "operations" or "routes")`,
        `${file}:${routeLine}: schema: /operations must NOT have fewer than 1 items`,
        `${file}:${mainLine}: invalid configuration: routes["tenant-settings-put"][0].ttl: must be a whole number ≥ 0`,
        `${file}:${mainLine}: schema: /routes/tenant-settings-put/0/ttl must be >= 0`,
        "",
      ].join("\n"),
    );
  });

  it("flow-style YAML is read as an envoy.yaml, not as a broken JSON configuration", () => {
    const file = join(scratch, "flow.yaml");
    const value = JSON.stringify(
      JSON.stringify({
        operations: [
          { kvm_name: "m", operation_type: "delete", key_source_type: "literal", key_source_name: "k" },
        ],
      }),
    );
    writeFileSync(
      file,
      `{ http_filters: [ { typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm,\n  config: { root_id: envoy_kvm, configuration: { "@type": type.googleapis.com/google.protobuf.StringValue, value: ${value} } } } } ] }\n`,
    );
    assert.deepEqual(cli(["config", "check", file]), { status: 0, stdout: `${file}:2: ok\n`, stderr: "" });
  });

  it("a YAML file without the envoy-kvm filter, and a file that is neither YAML nor JSON: exit 1", () => {
    const file = join(scratch, "empty.yaml");
    writeFileSync(file, "static_resources: {}\n");
    const r = cli(["config", "check", file]);
    assert.deepEqual(
      [r.status, r.stdout],
      [1, `${file}: no envoy-kvm wasm filter (root_id envoy_kvm) found\n`],
    );
    const bad = join(scratch, "bad.yaml");
    writeFileSync(bad, "a: [\n");
    const b = cli(["config", "check", bad]);
    assert.equal(b.status, 1);
    assert.match(b.stderr, /^envoy-kvm: not YAML or JSON: /);
  });
});
