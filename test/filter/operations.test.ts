// Every source, destination and operation of the filter, through the compiled .wasm.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { op, send, startKvm } from "./support.ts";

const getToHeader = (key: Record<string, unknown>) =>
  op({ operation_type: "get", ...key, output_destination_type: "header", output_destination_name: "x-out" });

describe("value sources (put, then get to a header)", () => {
  const cases: { name: string; source: [string, string]; req: Parameters<typeof send>[1]; want: string }[] = [
    {
      name: "header",
      source: ["header", "X-Value"],
      req: { path: "/", headers: [["x-value", "from-header"]] },
      want: "from-header",
    },
    {
      name: "query (percent- and plus-decoded)",
      source: ["query", "v"],
      req: { path: "/p?a=1&v=caf%C3%A9+au+lait" },
      want: "café au lait",
    },
    {
      name: "whole body",
      source: ["body", ""],
      req: { path: "/", body: "raw body bytes" },
      want: "raw body bytes",
    },
    {
      name: "JSON string field (unquoted)",
      source: ["body", "user.name"],
      req: { path: "/", body: '{"user":{"name":"Ada \\"L\\""}}' },
      want: 'Ada "L"',
    },
    {
      name: "JSON non-string field (its JSON text)",
      source: ["body", "user.roles"],
      req: { path: "/", body: '{"user":{"roles":[1, "two"]}}' },
      want: '[1, "two"]',
    },
    {
      name: "JSON array index",
      source: ["body", "items.1.id"],
      req: { path: "/", body: '{"items":[{"id":1},{"id":42}]}' },
      want: "42",
    },
    { name: "literal", source: ["literal", "fixed value"], req: { path: "/" }, want: "fixed value" },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const plugin = await startKvm({
        operations: [
          op({
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: "k",
            value_source_type: c.source[0],
            value_source_name: c.source[1],
          }),
          getToHeader({ key_source_type: "literal", key_source_name: "k" }),
        ],
      });
      const res = await send(plugin.worker(), c.req);
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.upstreamHeader("x-out"), c.want);
    });
  }

  it("shared_context written by an earlier operation of the same request", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "a",
          value_source_type: "header",
          value_source_name: "x-value",
        }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "a",
          output_destination_type: "shared_context",
          output_destination_name: "kvm.a",
        }),
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "b",
          value_source_type: "shared_context",
          value_source_name: "kvm.a",
        }),
        getToHeader({ key_source_type: "literal", key_source_name: "b" }),
      ],
    });
    const res = await send(plugin.worker(), { path: "/", headers: [["x-value", "relayed"]] });
    assert.equal(res.upstreamHeader("x-out"), "relayed");
  });
});

describe("key sources (put with a key from the request, get with a literal key)", () => {
  const cases: { name: string; key: [string, string]; req: Parameters<typeof send>[1]; literal: string }[] = [
    {
      name: "header",
      key: ["header", "x-user"],
      req: { path: "/", headers: [["x-user", "u-17"]] },
      literal: "u-17",
    },
    { name: "query", key: ["query", "user"], req: { path: "/?user=u%2F18" }, literal: "u/18" },
    {
      name: "body field",
      key: ["body", "user.id"],
      req: { path: "/", body: '{"user":{"id":"u-19"}}' },
      literal: "u-19",
    },
    { name: "whole body", key: ["body", ""], req: { path: "/", body: "u-20" }, literal: "u-20" },
    { name: "literal", key: ["literal", "u-21"], req: { path: "/" }, literal: "u-21" },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const plugin = await startKvm({
        operations: [
          op({
            operation_type: "put",
            key_source_type: c.key[0],
            key_source_name: c.key[1],
            value_source_type: "literal",
            value_source_name: "stored",
          }),
          getToHeader({ key_source_type: "literal", key_source_name: c.literal }),
        ],
      });
      const res = await send(plugin.worker(), c.req);
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.upstreamHeader("x-out"), "stored");
    });
  }

  it("composite keys join fragments with a double underscore (Apigee)", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key: [
            { source_type: "header", source_name: "x-tenant" },
            { source_type: "literal", source_name: "settings" },
            { source_type: "query", source_name: "name" },
          ],
          value_source_type: "literal",
          value_source_name: "composite",
        }),
        getToHeader({ key_source_type: "literal", key_source_name: "acme__settings__timeout" }),
      ],
    });
    const res = await send(plugin.worker(), { path: "/?name=timeout", headers: [["x-tenant", "acme"]] });
    assert.equal(res.upstreamHeader("x-out"), "composite");
  });
});

describe("get destinations", () => {
  async function getWith(destination: [string, string], req: Parameters<typeof send>[1]) {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "literal",
          value_source_name: "v a&l",
        }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "k",
          output_destination_type: destination[0],
          output_destination_name: destination[1],
        }),
      ],
    });
    return send(plugin.worker(), req);
  }

  it("header: replaces the request header sent upstream", async () => {
    const res = await getWith(["header", "x-setting"], {
      path: "/",
      headers: [["x-setting", "client-sent"]],
    });
    assert.equal(res.upstreamHeader("x-setting"), "v a&l");
  });

  it("query: sets the parameter on the upstream path, encoded, keeping the others", async () => {
    const res = await getWith(["query", "setting"], { path: "/items?page=2&setting=old" });
    assert.equal(res.upstreamHeader(":path"), "/items?page=2&setting=v%20a%26l");
  });

  it("body (whole): replaces the body and fixes content-length", async () => {
    const res = await getWith(["body", ""], { path: "/", body: "original longer body" });
    assert.equal(res.upstreamBody(), "v a&l");
    assert.equal(res.upstreamHeader("content-length"), "5");
  });

  it("body (JSON field): sets a nested field, creating objects, leaving the rest as sent", async () => {
    const res = await getWith(["body", "meta.setting"], { path: "/", body: '{"a": 1,  "b":[true]}' });
    const sent = res.upstreamBody()!;
    assert.deepEqual(JSON.parse(sent), { a: 1, b: [true], meta: { setting: "v a&l" } });
    assert.ok(sent.startsWith('{"a": 1,  "b":[true]'), sent);
    assert.equal(res.upstreamHeader("content-length"), String(Buffer.byteLength(sent)));
  });

  it("response_header: set on the response to the client, not upstream", async () => {
    const res = await getWith(["response_header", "x-kvm"], { path: "/" });
    assert.equal(res.responseHeader("x-kvm"), "v a&l");
    assert.equal(res.upstreamHeader("x-kvm"), undefined);
    assert.equal(res.responseHeader("x-upstream"), "yes");
  });

  it("shared_context: visible to later filters as Envoy filter state", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "literal",
          value_source_name: "tier-gold",
        }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "k",
          output_destination_type: "shared_context",
          output_destination_name: "kvm_tier",
        }),
      ],
    });
    const worker = plugin.worker();
    const id = worker.initializeHttpContext();
    worker.callOnRequestHeaders(
      id,
      [
        [":method", "GET"],
        [":path", "/"],
        [":authority", "a"],
      ],
      true,
    );
    // Envoy keeps what proxy_set_property wrote as filter state "wasm.<name>" (access logs:
    // %FILTER_STATE(wasm.kvm_tier)%).
    assert.equal(worker.getFilterState(id).get("wasm.kvm_tier")?.toString(), "tier-gold");
  });

  it("shared_context source: a value another filter set as filter state", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "shared_context",
          value_source_name: "upstream_tier",
        }),
        getToHeader({ key_source_type: "literal", key_source_name: "k" }),
      ],
    });
    const res = await plugin
      .worker()
      .http({ path: "/", filterState: { upstream_tier: "silver" } }, () => ({ status: 200 }));
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.upstreamRequest?.headers.find(([k]) => k === "x-out")?.[1], "silver");
  });
});

describe("delete", () => {
  it("removes the entry; deleting an absent key succeeds", async () => {
    const plugin = await startKvm({
      routes: {
        put: [
          op({
            operation_type: "put",
            key_source_type: "header",
            key_source_name: "x-k",
            value_source_type: "literal",
            value_source_name: "v",
          }),
        ],
        del: [op({ operation_type: "delete", key_source_type: "header", key_source_name: "x-k" })],
        get: [getToHeader({ key_source_type: "header", key_source_name: "x-k" })],
      },
    });
    const w = plugin.worker();
    await send(w, { path: "/", routeName: "put", headers: [["x-k", "a"]] });
    assert.equal(
      (await send(w, { path: "/", routeName: "get", headers: [["x-k", "a"]] })).upstreamHeader("x-out"),
      "v",
    );
    assert.equal((await send(w, { path: "/", routeName: "del", headers: [["x-k", "a"]] })).status, 200);
    assert.equal(
      (await send(w, { path: "/", routeName: "get", headers: [["x-k", "a"]] })).upstreamHeader("x-out"),
      undefined,
    );
    const absent = await send(w, { path: "/", routeName: "del", headers: [["x-k", "never-written"]] });
    assert.equal(absent.status, 200);
    // A delete of a key that was never written leaves no trace in shared data.
    assert.equal(
      plugin.sharedData.keys().some((k) => k.toString().endsWith(":never-written")),
      false,
    );
  });
});

describe("routes", () => {
  it("runs `operations` first, then the list of the request's route, in order", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: "k",
          value_source_type: "literal",
          value_source_name: "global",
        }),
      ],
      routes: {
        orders: [
          getToHeader({ key_source_type: "literal", key_source_name: "k" }),
          op({
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: "k",
            value_source_type: "literal",
            value_source_name: "orders",
          }),
        ],
        users: [getToHeader({ key_source_type: "literal", key_source_name: "k" })],
      },
    });
    const w = plugin.worker();
    assert.equal((await send(w, { path: "/", routeName: "orders" })).upstreamHeader("x-out"), "global");
    assert.equal((await send(w, { path: "/", routeName: "other" })).upstreamHeader("x-out"), undefined);
    const users = await send(w, { path: "/", routeName: "users" });
    assert.equal(users.upstreamHeader("x-out"), "global");
  });
});
