// Repeated request headers as Envoy's RequestHeaderMapImpl stores them: an O(1) ("inline") header
// is one entry with the values joined by ",", any other header keeps one entry per value and
// get_header_map_value returns the first (source/common/http/header_map_impl.cc insertByKey /
// appendToHeader; extensions/common/wasm/context.cc getHeaderMapValue returns entry[0]).
import assert from "node:assert/strict";
import { test } from "node:test";
import { INLINE_REQUEST_HEADERS } from "../../host/header-map.ts";
import { results, startProbe } from "./helpers.ts";

type Pairs = [string, string][];

async function probe(headers: Pairs, commands: string) {
  const plugin = await startProbe();
  let upstream: Pairs = [];
  await plugin.worker().http({ path: "/", headers: [...headers, ["x-probe", commands]] }, (r) => {
    upstream = r.headers;
    return { status: 200 };
  });
  return { plugin, upstream };
}

const valuesOf = (headers: Pairs, name: string) => headers.filter(([k]) => k === name).map(([, v]) => v);

test("a repeated inline header is one entry joined with ','; a repeated custom header keeps its entries and get returns the first", async () => {
  const { plugin, upstream } = await probe(
    [
      ["User-Agent", "a"],
      ["x-user", "ann"],
      ["user-agent", "b"],
      ["x-user", "bob"],
    ],
    "header-get=0:user-agent;header-get=0:x-user;header-pairs=0",
  );
  assert.deepEqual(results(plugin, "header-get=0:user-agent"), ["0 a,b"]);
  assert.deepEqual(results(plugin, "header-get=0:x-user"), ["0 ann"]);
  const pairs = results(plugin, "header-pairs=0")[0].split(" ");
  assert.deepEqual(
    pairs.filter((p) => p.startsWith("user-agent=") || p.startsWith("x-user=")),
    ["user-agent=a,b", "x-user=ann", "x-user=bob"],
    "the merged value stays where the first line was",
  );
  assert.deepEqual(valuesOf(upstream, "user-agent"), ["a,b"]);
  assert.deepEqual(valuesOf(upstream, "x-user"), ["ann", "bob"]);
});

test("every inline request header merges; cookie and other custom headers do not", async () => {
  const inline = [...INLINE_REQUEST_HEADERS].filter((h) => !h.startsWith(":"));
  const custom = ["cookie", "accept-language", "x-api-key", "forwarded"];
  const headers: Pairs = [...inline, ...custom].flatMap((h): Pairs => [
    [h, "1"],
    [h, "2"],
  ]);
  const { upstream } = await probe(headers, "");
  for (const h of inline) assert.deepEqual(valuesOf(upstream, h), ["1,2"], h);
  for (const h of custom) assert.deepEqual(valuesOf(upstream, h), ["1", "2"], h);
});

test("appendToHeader: an empty value adds nothing, an empty first value takes the next without a delimiter", async () => {
  const { plugin, upstream } = await probe(
    [
      ["accept", "x"],
      ["accept", ""],
      ["accept-encoding", ""],
      ["accept-encoding", "gzip"],
      ["x-empty", ""],
      ["x-empty", "y"],
    ],
    "header-get=0:accept;header-get=0:accept-encoding;header-get=0:x-empty",
  );
  assert.deepEqual(results(plugin, "header-get=0:accept"), ["0 x"]);
  assert.deepEqual(results(plugin, "header-get=0:accept-encoding"), ["0 gzip"]);
  assert.deepEqual(
    results(plugin, "header-get=0:x-empty"),
    ["0 "],
    "a custom header's first value, even empty",
  );
  assert.deepEqual(valuesOf(upstream, "x-empty"), ["", "y"]);
});

// context.cc addHeaderMapValue and setHeaderMapPairs use addCopy, which goes through the same
// insertByKey as the codec.
test("proxy_add_header_map_value and proxy_set_header_map_pairs merge inline headers too", async () => {
  const { plugin, upstream } = await probe(
    [["user-agent", "a"]],
    "header-add=0:user-agent:b;header-add=0:x-k:1;header-add=0:x-k:2;header-get=0:user-agent;" +
      "header-get=0:x-k;set-pairs=0:accept:a:accept:b:x-k:1:x-k:2:host:h;header-pairs=0",
  );
  assert.deepEqual(results(plugin, "header-get=0:user-agent"), ["0 a,b"]);
  assert.deepEqual(results(plugin, "header-get=0:x-k"), ["0 1"]);
  assert.deepEqual(
    results(plugin, "header-pairs=0")[0].split(" ").slice(1),
    [":authority=h", "accept=a,b", "x-k=1", "x-k=2"],
    "set_header_map_pairs: one accept entry; host is :authority and stays in front",
  );
  assert.deepEqual(valuesOf(upstream, "accept"), ["a,b"]);
});

// HeaderMapImpl's StaticLookupTable<RequestHeaderMap> maps the legacy "host" to ":authority".
test("in the request map, host is :authority", async () => {
  const { plugin, upstream } = await probe(
    [],
    "header-get=0:host;header-replace=0:Host:other;header-pairs=0",
  );
  assert.deepEqual(results(plugin, "header-get=0:host"), ["0 example.com"]);
  const pairs = results(plugin, "header-pairs=0")[0].split(" ");
  assert.deepEqual(
    pairs.filter((p) => p.startsWith(":authority=")),
    [":authority=other"],
  );
  assert.equal(pairs.filter((p) => p.startsWith("host=")).length, 0);
  assert.deepEqual(valuesOf(upstream, ":authority"), ["other"]);
});
