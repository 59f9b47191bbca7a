// Generated inputs: thousands of random headers, paths and bodies (invalid UTF-8, deep nesting,
// huge values) through a configuration that touches every source and destination. The filter must
// never trap: every request gets a normal answer and no worker VM fails.
import { it } from "node:test";
import assert from "node:assert/strict";
import { FILTER_DEBUG_WASM, FILTER_WASM, op, startKvm, type Pairs } from "./support.ts";
import { rng } from "../corpus/generator.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 20261127);
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 3000);

// The debug build keeps AssemblyScript's runtime assertions (reference counting, bounds), so a
// memory-management slip that the release build would survive silently traps there.
for (const [build, wasm] of [
  ["release", FILTER_WASM],
  ["debug", FILTER_DEBUG_WASM],
]) {
  it(`${build} build never traps on ${REQUESTS} generated requests (seed ${SEED})`, async () => {
    const random = rng(SEED);
    const int = (n: number) => Math.floor(random() * n);
    const pick = <T>(xs: T[]): T => xs[int(xs.length)];
    const ascii = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + int(95))).join("");
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
    const jsonish = (): Buffer => {
      const shapes = [
        () =>
          Buffer.from(
            JSON.stringify({ user: { id: ascii(int(20)), name: ascii(int(10)) }, v: ascii(int(30)) }),
          ),
        () => Buffer.from("[".repeat(int(5000)) + "]".repeat(int(5000))),
        () => Buffer.from('{"user":' + "{".repeat(int(200)) + '"id":"x"'),
        () => Buffer.from('{"v":"\\ud800\\u' + ascii(4) + '","user":{"id":1e309}}'),
        () => Buffer.concat([Buffer.from('{"user":{"id":"'), bytes(int(40)), Buffer.from('"}}')]),
        () => bytes(int(300)),
        () => Buffer.alloc(int(3) === 0 ? 1024 * 1024 + int(10) : int(10), "a"),
        () => Buffer.from(""),
      ];
      return pick(shapes)();
    };
    const path = () => {
      const parts = [
        "/",
        "/p?",
        "/p?k=" + ascii(int(20)),
        "/?user=%" + ascii(2) + "&v=" + "%FF".repeat(int(50)),
        "/?" + "&".repeat(int(10)) + "k",
        "/" + ascii(int(100)),
      ];
      return pick(parts) + (int(4) === 0 ? "#frag=" + ascii(5) : "");
    };

    const plugin = await startKvm(
      {
        operations: [
          op({
            operation_type: "put",
            key: [
              { source_type: "header", source_name: "x-k" },
              { source_type: "query", source_name: "user" },
            ],
            value_source_type: "body",
            value_source_name: "v",
            on_error_continue: true,
          }),
          op({
            operation_type: "put",
            key_source_type: "body",
            key_source_name: "user.id",
            value_source_type: "header",
            value_source_name: "x-v",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "header",
            key_source_name: "x-k",
            output_destination_type: "body",
            output_destination_name: "user.name",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "query",
            key_source_name: "k",
            output_destination_type: "query",
            output_destination_name: "k2",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "header",
            key_source_name: "x-k",
            output_destination_type: "shared_context",
            output_destination_name: "s",
            on_error_continue: true,
          }),
          op({
            operation_type: "put",
            key_source_type: "shared_context",
            key_source_name: "s",
            value_source_type: "body",
            value_source_name: "",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "body",
            key_source_name: "",
            output_destination_type: "response_header",
            output_destination_name: "x-r",
            default_value: "d",
            on_error_continue: true,
          }),
          op({
            operation_type: "get",
            key_source_type: "header",
            key_source_name: "x-k",
            output_destination_type: "header",
            output_destination_name: "x-out",
          }),
          op({
            operation_type: "delete",
            key_source_type: "query",
            key_source_name: "user",
            on_error_continue: true,
          }),
        ],
      },
      { workers: 2, bufferLimitBytes: 2 * 1024 * 1024, wasm },
    );

    const statuses = new Map<number, number>();
    for (let i = 0; i < REQUESTS; i++) {
      const headers: Pairs = [];
      if (int(4) !== 0) headers.push(["x-k", ascii(int(4) === 0 ? 600 : int(30))]);
      if (int(2) === 0) headers.push(["x-v", ascii(int(4) === 0 ? 5000 : int(30))]);
      for (let h = int(5); h > 0; h--)
        headers.push([
          "x-" +
            ascii(int(8))
              .toLowerCase()
              .replace(/[^a-z0-9-]/g, "a"),
          ascii(int(40)),
        ]);
      const body = int(3) === 0 ? undefined : jsonish();
      const worker = plugin.worker(i % 2);
      const res = await worker.http(
        {
          method: body ? "POST" : "GET",
          path: path(),
          headers,
          body,
          chunks:
            body && int(2) === 0
              ? [body.subarray(0, body.length >> 1), body.subarray(body.length >> 1)]
              : undefined,
        },
        () => ({ status: 200 }),
      );
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(
        [200, 400, 413].includes(res.status),
        `request ${i}: status ${res.status} ${res.body.toString().slice(0, 200)}`,
      );
      assert.equal(worker.failed, false, `request ${i} failed the VM`);
    }
    // The generator must reach both the success path and the error path.
    assert.ok((statuses.get(200) ?? 0) > REQUESTS / 10, JSON.stringify([...statuses]));
    assert.ok((statuses.get(400) ?? 0) > REQUESTS / 10, JSON.stringify([...statuses]));
  });
}
