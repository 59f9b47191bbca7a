// Every source × destination × operation. One request carries the key "K" and the value "V" in every
// kind of source at once; each combination reads the key (and value) from one kind and writes to one.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { op, startKvm } from "./support.ts";

const KEY = "K-1";
const VALUE = "V/1 é";

const keySources: [string, string][] = [
  ["header", "x-key"],
  ["query", "key"],
  ["body", "ids.key"],
  ["shared_context", "kvm_key"],
  ["literal", KEY],
];
const valueSources: [string, string][] = [
  ["header", "x-value"],
  ["query", "value"],
  ["body", "ids.value"],
  ["shared_context", "kvm_value"],
  ["literal", VALUE],
];
const destinations = ["header", "query", "body", "shared_context", "response_header"];

// The request: every source holds the key and the value. shared_context values come from an
// earlier filter (Envoy filter state), like another wasm filter would have set them.
async function sendAll(ops: Record<string, unknown>[]) {
  const plugin = await startKvm({ operations: ops });
  const res = await plugin.worker().http(
    {
      method: "POST",
      path: `/items?key=${encodeURIComponent(KEY)}&value=${encodeURIComponent(VALUE)}`,
      headers: [
        ["x-key", KEY],
        ["x-value", VALUE], // the host's API carries header values as UTF-8 text
        ["content-type", "application/json"],
      ],
      body: JSON.stringify({ ids: { key: KEY, value: VALUE } }),
      filterState: { kvm_key: KEY, kvm_value: VALUE },
    },
    () => ({ status: 200 }),
  );
  assert.equal(res.status, 200, res.body.toString());
  return res;
}

const header = (pairs: [string, string][] | undefined, name: string) => pairs?.find(([k]) => k === name)?.[1];

describe("put: key source × value source", () => {
  for (const [ks, kn] of keySources) {
    for (const [vs, vn] of valueSources) {
      it(`key from ${ks}, value from ${vs}`, async () => {
        const res = await sendAll([
          op({
            operation_type: "put",
            key_source_type: ks,
            key_source_name: kn,
            value_source_type: vs,
            value_source_name: vn,
          }),
          op({
            operation_type: "get",
            key_source_type: "literal",
            key_source_name: KEY,
            output_destination_type: "header",
            output_destination_name: "x-out",
          }),
        ]);
        assert.equal(header(res.upstreamRequest?.headers, "x-out"), VALUE);
      });
    }
  }
});

describe("get: key source × destination", () => {
  for (const [ks, kn] of keySources) {
    for (const dest of destinations) {
      it(`key from ${ks}, value to ${dest}`, async () => {
        const name =
          dest === "body"
            ? "out.v"
            : dest === "shared_context"
              ? "kvm_out"
              : dest.includes("header")
                ? "x-out"
                : "out";
        const ops = [
          op({
            operation_type: "put",
            key_source_type: "literal",
            key_source_name: KEY,
            value_source_type: "literal",
            value_source_name: VALUE,
          }),
          op({
            operation_type: "get",
            key_source_type: ks,
            key_source_name: kn,
            output_destination_type: dest,
            output_destination_name: name,
          }),
        ];
        // A shared-context result is checked through a later operation that reads it.
        if (dest === "shared_context") {
          ops.push(
            op({
              operation_type: "put",
              key_source_type: "literal",
              key_source_name: "copy",
              value_source_type: "shared_context",
              value_source_name: name,
            }),
          );
          ops.push(
            op({
              operation_type: "get",
              key_source_type: "literal",
              key_source_name: "copy",
              output_destination_type: "header",
              output_destination_name: "x-out",
            }),
          );
        }
        const res = await sendAll(ops);
        const upstream = res.upstreamRequest!;
        let got: string | undefined;
        if (dest === "header" || dest === "shared_context") got = header(upstream.headers, "x-out");
        if (dest === "response_header") got = header(res.headers, "x-out");
        if (dest === "query")
          got = new URL(header(upstream.headers, ":path")!, "http://h").searchParams.get("out") ?? undefined;
        if (dest === "body") got = JSON.parse(upstream.body.toString()).out.v;
        assert.equal(got, VALUE);
      });
    }
  }
});

describe("delete: key source", () => {
  for (const [ks, kn] of keySources) {
    it(`key from ${ks}`, async () => {
      const res = await sendAll([
        op({
          operation_type: "put",
          key_source_type: "literal",
          key_source_name: KEY,
          value_source_type: "literal",
          value_source_name: VALUE,
        }),
        op({ operation_type: "delete", key_source_type: ks, key_source_name: kn }),
        op({
          operation_type: "get",
          key_source_type: "literal",
          key_source_name: KEY,
          output_destination_type: "header",
          output_destination_name: "x-out",
          default_value: "gone",
        }),
      ]);
      assert.equal(header(res.upstreamRequest?.headers, "x-out"), "gone");
    });
  }
});
