// What makes two requests address one entry, through the compiled .wasm: composite-key fragments
// that could forge a separator, lone surrogates in JSON strings, shared_context names Envoy hands
// to filter state, and what a failed request keeps.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { op, send, startKvm } from "./support.ts";

const composite = (extra: Record<string, unknown> = {}) => ({
  key: [
    { source_type: "header", source_name: "x-tenant" },
    { source_type: "header", source_name: "x-user" },
  ],
  ...extra,
});

// put the x-v header under (x-tenant, x-user); get it back into x-out on GET.
async function tenantStore(extra: Record<string, unknown> = {}) {
  return startKvm({
    operations: [],
    routes: {
      put: [
        op({
          operation_type: "put",
          ...composite(extra),
          value_source_type: "header",
          value_source_name: "x-v",
        }),
      ],
      get: [
        op({
          operation_type: "get",
          ...composite(extra),
          output_destination_type: "header",
          output_destination_name: "x-out",
        }),
      ],
    },
  });
}

function headers(tenant: string, user: string, value?: string): [string, string][] {
  const out: [string, string][] = [
    ["x-tenant", tenant],
    ["x-user", user],
  ];
  if (value !== undefined) out.push(["x-v", value]);
  return out;
}

describe("composite keys", () => {
  it("refuse a request fragment that could forge the separator, naming the fragment", async () => {
    const plugin = await tenantStore();
    const w = plugin.worker();
    const put = await send(w, {
      path: "/",
      routeName: "put",
      headers: headers("acme__corp", "bob", "secret"),
    });
    assert.equal(put.status, 400);
    assert.equal(put.json().error, "invalid_key");
    assert.equal(
      put.json().message,
      'key input header "x-tenant" contains the key separator "__" or begins or ends with "_"',
    );
    for (const [tenant, user] of [
      ["acme", "corp__bob"],
      ["acme_", "bob"],
      ["acme", "_bob"],
    ]) {
      const res = await send(w, { path: "/", routeName: "get", headers: headers(tenant, user) });
      assert.equal(res.status, 400, `${tenant} / ${user}`);
      assert.equal(res.json().error, "invalid_key");
    }
  });

  it("keep tenants apart: one tenant's fragments cannot reach another's entry", async () => {
    const plugin = await tenantStore();
    const w = plugin.worker();
    assert.equal(
      (await send(w, { path: "/", routeName: "put", headers: headers("acme-corp", "bob", "mine") })).status,
      200,
    );
    const other = await send(w, { path: "/", routeName: "get", headers: headers("acme", "corp__bob") });
    assert.equal(other.status, 400);
    assert.equal(other.upstreamHeader("x-out"), undefined);
    const same = await send(w, { path: "/", routeName: "get", headers: headers("acme-corp", "bob") });
    assert.equal(same.upstreamHeader("x-out"), "mine");
  });

  it("join fragments as they are with allow_key_separator (Apigee-compatible data)", async () => {
    const plugin = await tenantStore({ allow_key_separator: true });
    const w = plugin.worker();
    const put = await send(w, {
      path: "/",
      routeName: "put",
      headers: headers("acme__corp", "bob", "apigee"),
    });
    assert.equal(put.status, 200);
    // The very collision the default refuses: Apigee's own key for this entry.
    const get = await send(w, { path: "/", routeName: "get", headers: headers("acme", "corp__bob") });
    assert.equal(get.upstreamHeader("x-out"), "apigee");
  });

  it("leave literal fragments and single-fragment keys alone", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key: [
            { source_type: "literal", source_name: "team__a_" },
            { source_type: "header", source_name: "x-user" },
          ],
          value_source_type: "literal",
          value_source_name: "v",
        }),
        op({
          operation_type: "put",
          key_source_type: "header",
          key_source_name: "x-single",
          value_source_type: "literal",
          value_source_name: "v",
        }),
      ],
    });
    const res = await send(plugin.worker(), {
      path: "/",
      headers: [
        ["x-user", "bob"],
        ["x-single", "_a__b_"],
      ],
    });
    assert.equal(res.status, 200);
  });
});

describe("JSON strings that are not Unicode text", () => {
  const putFromBody = (keySource: string, valueSource: string) =>
    startKvm(
      op({
        operation_type: "put",
        key_source_type: "body",
        key_source_name: keySource,
        value_source_type: "body",
        value_source_name: valueSource,
      }),
    );

  it("answer 400 for a lone surrogate in a key (no two keys collapse into U+FFFD)", async () => {
    const plugin = await putFromBody("k", "v");
    for (const escape of ["\\ud800", "\\udbff", "\\udc00", "a\\ud800b", "\\ude00\\ud83d"]) {
      const res = await send(plugin.worker(), { path: "/", body: `{"k":"${escape}","v":"x"}` });
      assert.equal(res.status, 400, escape);
      assert.equal(res.json().error, "invalid_body");
      assert.equal(
        res.json().message,
        'body field "k" is not valid Unicode text (it has a lone surrogate escape)',
      );
    }
  });

  it("answer 400 for a lone surrogate in a value", async () => {
    const plugin = await putFromBody("k", "v");
    const res = await send(plugin.worker(), { path: "/", body: '{"k":"a","v":"\\udfff"}' });
    assert.equal(res.status, 400);
    assert.equal(
      res.json().message,
      'body field "v" is not valid Unicode text (it has a lone surrogate escape)',
    );
  });

  it("accept a surrogate pair escape as the character it stands for", async () => {
    const plugin = await startKvm({
      operations: [
        op({
          operation_type: "put",
          key_source_type: "body",
          key_source_name: "k",
          value_source_type: "literal",
          value_source_name: "found",
        }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: "😀",
          output_destination_type: "header",
          output_destination_name: "x-out",
        }),
      ],
    });
    const res = await send(plugin.worker(), { path: "/", body: '{"k":"\\ud83d\\ude00"}' });
    assert.equal(res.status, 200);
    assert.equal(res.upstreamHeader("x-out"), "found");
  });
});

describe("shared_context names Envoy passes to filter state", () => {
  for (const name of ["route_name", "node", "cluster_metadata"]) {
    it(`reads ${name} from filter state another filter set`, async () => {
      const plugin = await startKvm({
        operations: [
          op({
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: "k",
            value_source_type: "shared_context",
            value_source_name: name,
          }),
          op({
            operation_type: "get",
            key_source_type: "literal",
            key_source_name: "k",
            output_destination_type: "header",
            output_destination_name: "x-out",
          }),
        ],
      });
      const res = await plugin.worker().http(
        {
          method: "GET",
          path: "/",
          authority: "api.example.com",
          filterState: { [name]: "from-another-filter" },
        },
        () => ({ status: 200 }),
      );
      assert.equal(res.status, 200);
      assert.equal(res.upstreamRequest?.headers.find(([k]) => k === "x-out")?.[1], "from-another-filter");
    });
  }
});

describe("a failed request keeps what ran before the failure (no rollback)", () => {
  it("a put before a failing operation stays stored although the client gets 400", async () => {
    const plugin = await startKvm({
      operations: [],
      routes: {
        write: [
          op({
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: "first",
            value_source_type: "literal",
            value_source_name: "kept",
          }),
          op({
            operation_type: "put",
            key_source_type: "header",
            key_source_name: "x-missing",
            value_source_type: "literal",
            value_source_name: "v",
          }),
        ],
        read: [
          op({
            operation_type: "get",
            key_source_type: "literal",
            key_source_name: "first",
            output_destination_type: "header",
            output_destination_name: "x-out",
          }),
        ],
      },
    });
    const w = plugin.worker();
    const failed = await send(w, { path: "/", routeName: "write" });
    assert.equal(failed.status, 400);
    assert.equal(failed.json().error, "missing_key");
    const read = await send(w, { path: "/", routeName: "read" });
    assert.equal(read.upstreamHeader("x-out"), "kept");
  });
});
