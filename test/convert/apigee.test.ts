// `convert apigee` on the sample proxy (examples/apigee/orders-proxy, as a folder and as a bundle .zip built
// here): the converted configuration runs in the filter on the host against requests whose outcome Apigee's
// KeyValueMapOperations reference specifies; every unsupported element is reported with file:line.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import AdmZip from "adm-zip";
import { parse } from "yaml";
import { convertApigee } from "../../convert/apigee.ts";
import { checkConfiguration } from "../../convert/check.ts";
import { cli, gateway, readEntry, root, seedEntry } from "./support.ts";

const SAMPLE = "examples/apigee/orders-proxy";
const FILES = `${SAMPLE}/apiproxy`;
let scratch: string;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), "convert-apigee-"));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

function sampleLocal() {
  process.chdir(root);
  return convertApigee(SAMPLE, { policy: "local" });
}

describe("convert apigee: the sample proxy on the host (local policy)", () => {
  it("composite keys join with __: the Get reads <x-tenant>__plan into the request header", async () => {
    const { config, envoyRoutes } = sampleLocal();
    const gw = await gateway(config, envoyRoutes);
    await seedEntry(gw.plugin, "tenant-settings", "acme__plan", "gold");
    const res = await gw.request("GET", "/v1/orders/17", [["x-tenant", "acme"]]);
    assert.equal(res.status, 200);
    assert.equal(res.upstreamHeader("x-tenant-plan"), "gold");
  });

  it("a Get that misses leaves the variable unset (no header, no error)", async () => {
    const { config, envoyRoutes } = sampleLocal();
    const gw = await gateway(config, envoyRoutes);
    const res = await gw.request("GET", "/v1/orders/17", [["x-tenant", "globex"]]);
    assert.equal(res.status, 200);
    assert.equal(res.upstreamHeader("x-tenant-plan"), undefined);
  });

  it("Put without override keeps an existing value (Apigee's override defaults to false)", async () => {
    const { config, envoyRoutes } = sampleLocal();
    const gw = await gateway(config, envoyRoutes);
    const body = JSON.stringify({ order: { id: "o-1" } });
    const first = await gw.request(
      "POST",
      "/v1/orders",
      [
        ["x-tenant", "acme"],
        ["x-user", "ann"],
        ["idempotency-key", "k1"],
      ],
      body,
    );
    assert.equal(first.status, 200);
    await gw.request(
      "POST",
      "/v1/orders",
      [
        ["x-tenant", "acme"],
        ["x-user", "bob"],
        ["idempotency-key", "k1"],
      ],
      body,
    );
    assert.equal(await readEntry(gw.plugin, "orders.idempotency-keys", "k1"), "ann");
  });

  it('Put override="true" replaces; the value ref is the JSON body path ExtractVariables read; Get assigns it to a query parameter', async () => {
    const { config, envoyRoutes } = sampleLocal();
    const gw = await gateway(config, envoyRoutes);
    for (const id of ["o-1", "o-2"]) {
      const res = await gw.request(
        "POST",
        "/v1/orders",
        [
          ["x-tenant", "acme"],
          ["x-user", "ann"],
          ["idempotency-key", id],
        ],
        JSON.stringify({ order: { id } }),
      );
      assert.equal(res.status, 200);
    }
    assert.equal(await readEntry(gw.plugin, "last-order", "ann"), "o-2");
    const last = await gw.request("GET", "/v1/orders/last", [
      ["x-tenant", "acme"],
      ["x-user", "ann"],
    ]);
    assert.equal(last.upstreamHeader(":path"), "/v1/orders/last?last_order=o-2");
  });

  it("Delete removes the key; a later Get misses and leaves the query parameter unset", async () => {
    const { config, envoyRoutes } = sampleLocal();
    const gw = await gateway(config, envoyRoutes);
    await seedEntry(gw.plugin, "last-order", "ann", "o-9");
    const del = await gw.request("DELETE", "/v1/orders/o-9", [
      ["x-tenant", "acme"],
      ["x-user", "ann"],
    ]);
    assert.equal(del.status, 200);
    assert.equal(await readEntry(gw.plugin, "last-order", "ann"), undefined);
    const last = await gw.request("GET", "/v1/orders/last", [
      ["x-tenant", "acme"],
      ["x-user", "ann"],
    ]);
    assert.equal(last.upstreamHeader(":path"), "/v1/orders/last");
  });

  it('continueOnError="true": a Get whose key variable is unset lets the request go on', async () => {
    const { config, envoyRoutes } = sampleLocal();
    const gw = await gateway(config, envoyRoutes);
    const res = await gw.request("GET", "/v1/orders/last", [["x-tenant", "acme"]]);
    assert.equal(res.status, 200);
    assert.equal(res.upstreamHeader(":path"), "/v1/orders/last");
  });

  it("flows become routes: PreFlow, then the first matching flow, then PostFlow; other requests take the endpoint's route", () => {
    const { config, envoyRoutes } = sampleLocal();
    assert.deepEqual(
      envoyRoutes.map((r) => r.name),
      [
        "default.create-order",
        "default.get-last-order",
        "default.cancel-order",
        "default.region-note",
        "default.save-note",
        "default",
      ],
    );
    const kinds = (name: string) => config.routes![name].map((op) => `${op.operation_type} ${op.kvm_name}`);
    assert.deepEqual(kinds("default.create-order"), [
      "get tenant-settings",
      "put orders.idempotency-keys",
      "put last-order",
    ]);
    assert.deepEqual(kinds("default.cancel-order"), ["get tenant-settings", "delete last-order"]);
    assert.deepEqual(kinds("default"), ["get tenant-settings"]);
  });
});

describe("convert apigee: cluster policy (the default)", () => {
  it("passes config check; ExpiryTimeInSecs becomes cache_ttl of cluster gets; InitialEntries an import file", async () => {
    process.chdir(root);
    const conversion = convertApigee(SAMPLE, { policy: "cluster" });
    const verdict = await checkConfiguration(JSON.stringify(conversion.config));
    assert.deepEqual(verdict, { ok: true, filter: [], schema: [] });
    assert.deepEqual(conversion.config.routes!["default.get-last-order"], [
      {
        policy: "cluster",
        kvm_name: "tenant-settings",
        operation_type: "get",
        key: [
          { source_type: "header", source_name: "x-tenant" },
          { source_type: "literal", source_name: "plan" },
        ],
        output_destination_type: "header",
        output_destination_name: "x-tenant-plan",
        cache_ttl: 60,
      },
      {
        policy: "cluster",
        kvm_name: "last-order",
        operation_type: "get",
        key_source_type: "header",
        key_source_name: "x-user",
        output_destination_type: "query",
        output_destination_name: "last_order",
        cache_ttl: 30,
        on_error_continue: true,
      },
    ]);
    assert.deepEqual(conversion.imports, [
      { kvm: "tenant-settings", entries: [{ name: "acme__plan", value: "gold" }] },
    ]);
  });

  it("the CLI writes the configuration, the envoy.yaml fragment and the import file; exit 2 (incomplete)", () => {
    const out = join(scratch, "orders.json");
    const fragment = join(scratch, "orders-envoy.yaml");
    const seeds = join(scratch, "seeds");
    const r = cli(["convert", "apigee", SAMPLE, "-o", out, "--envoy", fragment, "--import-dir", seeds]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stdout,
      /^incomplete: 8 elements not converted \(unsupported above\); 13 operations on 6 routes; config check passed$/m,
    );
    assert.deepEqual(
      JSON.parse(readFileSync(out, "utf8")),
      convertApigee(SAMPLE, { policy: "cluster" }).config,
    );
    assert.deepEqual(JSON.parse(readFileSync(join(seeds, "tenant-settings.json"), "utf8")), {
      keyValueEntries: [{ name: "acme__plan", value: "gold" }],
    });
    const check = cli(["config", "check", fragment]);
    assert.equal(check.status, 0, check.stdout);
    assert.match(check.stdout, /orders-envoy\.yaml:\d+: ok\n$/);
    const address = (c: {
      load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: unknown } }[] }[] };
    }) => c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address;
    const clusters = (parse(readFileSync(fragment, "utf8")) as { clusters: { name: string }[] }).clusters;
    assert.deepEqual(
      clusters.map((c) => [c.name, address(c as never)]),
      [
        ["upstream", { socket_address: { address: "orders.internal.example.com", port_value: 443 } }],
        ["kvm_service", { socket_address: { address: "127.0.0.1", port_value: 8081 } }],
      ],
      "the TargetEndpoint's URL, and the KVM service at its default address",
    );
    // The target is https://: Envoy must speak TLS to it (with the host as SNI), the KVM service stays plain.
    assert.deepEqual(
      clusters.map((c) => (c as { transport_socket?: unknown }).transport_socket),
      [
        {
          name: "envoy.transport_sockets.tls",
          typed_config: {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            sni: "orders.internal.example.com",
          },
        },
        undefined,
      ],
    );
  });

  it("--dry-run prints the report and writes nothing", async () => {
    const { existsSync } = await import("node:fs");
    const out = join(scratch, "dry.json");
    const fragment = join(scratch, "dry.yaml");
    const r = cli([
      "convert",
      "apigee",
      SAMPLE,
      "--dry-run",
      "-o",
      out,
      "--envoy",
      fragment,
      "--import-dir",
      join(scratch, "dry"),
    ]);
    assert.equal(r.status, 2);
    assert.match(r.stdout, /^incomplete: /m);
    assert.doesNotMatch(r.stdout, /^wrote /m);
    assert.equal(existsSync(out) || existsSync(fragment) || existsSync(join(scratch, "dry")), false);
  });

  it("a proxy bundle .zip converts like its folder, its files named inside the zip", () => {
    process.chdir(root);
    const zip = new AdmZip();
    zip.addLocalFolder(`${root}${FILES}`, "apiproxy");
    const file = join(scratch, "orders_rev3.zip");
    zip.writeZip(file);
    const fromZip = convertApigee(file, { policy: "cluster" });
    const fromFolder = convertApigee(SAMPLE, { policy: "cluster" });
    assert.deepEqual(fromZip.config, fromFolder.config);
    assert.deepEqual(
      fromZip.report.format(),
      fromFolder.report.format().map((l) => l.replace(`${FILES}/`, `${file}:apiproxy/`)),
    );
  });

  it("a lone policy file runs its operations on every request; other policies' variables are shared_context; complete: exit 0", () => {
    const file = `${FILES}/policies/KVM-Put-Last-Order.xml`;
    const r = cli(["convert", "apigee", file, "--dry-run"]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(
      r.stdout,
      `${file}:4: converted: <Put override="true">: put last-order key header x-user ← shared_context order.id, override true\n` +
        "complete: 1 operation for every request; config check passed\n" +
        'cluster operations call the KVM service through the Envoy cluster "kvm_service" (kvm_service defaults): define it in envoy.yaml\n',
    );
    process.chdir(root);
    assert.deepEqual(convertApigee(file, { policy: "local" }).config, {
      operations: [
        {
          policy: "local",
          kvm_name: "last-order",
          operation_type: "put",
          key_source_type: "header",
          key_source_name: "x-user",
          value_source_type: "shared_context",
          value_source_name: "order.id",
          override: true,
        },
      ],
    });
  });

  it("exit 1 when the input is not an Apigee proxy", () => {
    const r = cli(["convert", "apigee", "examples/kong/kong.yaml", "--dry-run"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^envoy-kvm: examples\/kong\/kong.yaml is not an Apigee policy: /);
  });
});

describe("convert apigee: every element without an equivalent is reported with file:line", () => {
  it("the sample proxy's unsupported elements, each on its line", () => {
    process.chdir(root);
    const unsupported = convertApigee(SAMPLE, { policy: "cluster" })
      .report.format()
      .filter((l) => l.includes(": unsupported: "));
    assert.deepEqual(unsupported, [
      `${FILES}/policies/KVM-Audit.xml:9: unsupported: <Value ref="response.status.code">: response.status.code: an Apigee built-in variable the filter cannot read or write`,
      `${FILES}/policies/KVM-Legacy.xml:6: unsupported: <Parameter ref="request.formparam.account">: request.formparam.account: form parameters (the filter reads JSON bodies only)`,
      `${FILES}/policies/KVM-Legacy.xml:9: unsupported: <Get index="2">: envoy-kvm keeps one value per key (index 1 only)`,
      `${FILES}/policies/KVM-Legacy.xml:9: unsupported: <Get assignTo="private.legacy.secret">: private.legacy.secret: private (encrypted) variables have no equivalent until envoy-kvm encrypts values`,
      `${FILES}/policies/KVM-Legacy.xml:14: unsupported: <Put> with 2 <Value>s: envoy-kvm keeps exactly one value per key`,
      `${FILES}/policies/KVM-Legacy.xml:16: unsupported: <Parameter>greeting-{request.header.x-user}</Parameter>: a message template; envoy-kvm literals are taken as written`,
      `${FILES}/proxies/default.xml:75: unsupported: flow default.legacy: condition not routable ("or" in a condition has no route-match equivalent); its KVM steps are not converted`,
      `${FILES}/proxies/default.xml:81: unsupported: step KVM-Audit in the default PostFlow response: the filter runs operations on the request only; not converted`,
    ]);
  });

  it("the rest: map name refs, scopes, refs, multi-value variables, step conditions, target flows, JSONPaths, unknown elements", async () => {
    const { mkdirSync, writeFileSync } = await import("node:fs");
    const dir = join(scratch, "odd-proxy");
    mkdirSync(join(dir, "apiproxy/policies"), { recursive: true });
    mkdirSync(join(dir, "apiproxy/proxies"), { recursive: true });
    mkdirSync(join(dir, "apiproxy/targets"), { recursive: true });
    const policy = (name: string, body: string) =>
      writeFileSync(
        join(dir, `apiproxy/policies/${name}.xml`),
        `<KeyValueMapOperations name="${name}" mapIdentifier="m">\n${body}\n</KeyValueMapOperations>\n`,
      );
    policy("A", '<MapName ref="map.var"/>\n<Get assignTo="x"><Key><Parameter>k</Parameter></Key></Get>');
    policy("B", "<Scope>galaxy</Scope>\n<Delete><Key><Parameter>k</Parameter></Key></Delete>");
    policy(
      "C",
      '<Get assignTo="request.header.x-a.values"><Key><Parameter ref="request.queryparam.q.2"/></Key></Get>',
    );
    policy("D", "<Get><Key><Parameter>k</Parameter></Key></Get>\n<Delete/>\n<Frobnicate/>");
    policy("E", '<Put><Key><Parameter ref="ev.items"/></Key><Value ref="request"/></Put>');
    policy("F", '<Delete><Key><Parameter ref="flow.var"/></Key></Delete>');
    policy(
      "G",
      "<InitialEntries><Entry><Key><Parameter>a</Parameter></Key><Value>1</Value><Value>2</Value></Entry></InitialEntries>\n<Delete><Key><Parameter>k</Parameter></Key></Delete>",
    );
    writeFileSync(
      join(dir, "apiproxy/policies/EV.xml"),
      '<ExtractVariables name="EV"><VariablePrefix>ev</VariablePrefix><JSONPayload>\n<Variable name="items"><JSONPath>$.items[*].id</JSONPath></Variable>\n</JSONPayload></ExtractVariables>\n',
    );
    writeFileSync(
      join(dir, "apiproxy/proxies/default.xml"),
      [
        '<ProxyEndpoint name="default">',
        "<PreFlow><Request>",
        "<Step><Name>A</Name></Step><Step><Name>B</Name></Step><Step><Name>C</Name></Step><Step><Name>D</Name></Step><Step><Name>E</Name></Step>",
        "<Step><Name>F</Name>",
        '<Condition>request.verb = "GET"</Condition></Step><Step><Name>G</Name></Step>',
        "</Request></PreFlow>",
        '<FaultRules><FaultRule name="quota">\n<Step><Name>G</Name></Step></FaultRule></FaultRules>',
        "<HTTPProxyConnection><BasePath>/odd</BasePath></HTTPProxyConnection>",
        "</ProxyEndpoint>",
      ].join("\n"),
    );
    writeFileSync(
      join(dir, "apiproxy/targets/default.xml"),
      '<TargetEndpoint name="default"><PreFlow><Request>\n<Step><Name>F</Name></Step>\n</Request></PreFlow></TargetEndpoint>\n',
    );
    const lines = convertApigee(dir, { policy: "local" })
      .report.format()
      .filter((l) => l.includes(": unsupported: "));
    const p = `${dir}/apiproxy`;
    assert.deepEqual(lines, [
      `${p}/policies/A.xml:2: unsupported: <MapName ref="map.var">: map names are fixed in envoy-kvm configurations`,
      `${p}/policies/B.xml:2: unsupported: Scope "galaxy" is not environment, organization, apiproxy or policy`,
      `${p}/policies/C.xml:2: unsupported: <Parameter ref="request.queryparam.q.2">: request.queryparam.q.2: envoy-kvm reads and writes one value of a query parameter, not its value list`,
      `${p}/policies/C.xml:2: unsupported: <Get assignTo="request.header.x-a.values">: request.header.x-a.values: envoy-kvm reads and writes one value of a header, not its value list`,
      `${p}/policies/D.xml:2: unsupported: <Get> has no assignTo`,
      `${p}/policies/D.xml:3: unsupported: <Delete> has no <Key>: not converted`,
      `${p}/policies/D.xml:4: unsupported: <Frobnicate> has no envoy-kvm equivalent`,
      `${p}/policies/E.xml:2: unsupported: <Parameter ref="ev.items">: ev.items: set by ExtractVariables EV with a JSONPath that is not a plain dotted path`,
      `${p}/policies/E.xml:2: unsupported: <Value ref="request">: request: an Apigee built-in variable the filter cannot read or write`,
      `${p}/policies/G.xml:2: unsupported: <InitialEntries>: local maps (Envoy shared data) cannot be seeded; use policy cluster and envoy-kvm kvm import`,
      `${p}/proxies/default.xml:5: unsupported: step F in default PreFlow has a <Condition> (request.verb = "GET"): steps run unconditionally in envoy-kvm; not converted`,
      `${p}/proxies/default.xml:8: unsupported: step G in ProxyEndpoint default / FaultRules / FaultRule quota: only proxy endpoint request flows are converted`,
      `${p}/targets/default.xml:2: unsupported: step F in TargetEndpoint default / PreFlow / Request: only proxy endpoint request flows are converted`,
    ]);
    const cluster = convertApigee(dir, { policy: "cluster" }).report.format();
    assert.ok(
      cluster.includes(
        `${p}/policies/G.xml:2: unsupported: <Entry> with 2 values: envoy-kvm keeps one value per key`,
      ),
      cluster.join("\n"),
    );
  });
});
