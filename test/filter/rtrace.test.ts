// Exact leak check: the filter built with AssemblyScript's rtrace (build/kvm_filter.rtrace.wasm)
// reports every allocation and free, so live blocks can be counted after each round of requests.
// memory.test.ts watches the module's memory size, which only moves in large steps; this test sees
// a single leaked block. (The rtrace imports are a test-only host option, not something Envoy gives.)
import { it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Rtrace } from "assemblyscript/lib/rtrace";
import type { Worker } from "../../host/index.ts";
import { op, startKvm, type Pairs } from "./support.ts";

const RTRACE_WASM = fileURLToPath(new URL("../../build/kvm_filter.rtrace.wasm", import.meta.url));

it("every request path frees every block it allocates (rtrace build)", async () => {
  const problems: string[] = [];
  let rtrace: Rtrace | undefined;
  const instrumentation = {
    modules: ["rtrace"],
    imports(memory: () => WebAssembly.Memory | undefined): WebAssembly.Imports {
      rtrace = new Rtrace({
        onerror: (error: Error) => problems.push(error.message),
        getMemory: () => memory()!,
      });
      return { rtrace: rtrace as unknown as WebAssembly.ModuleImports };
    },
  };
  const plugin = await startKvm(
    {
      operations: [
        op({
          operation_type: "put",
          key: [
            { source_type: "header", source_name: "x-k" },
            { source_type: "query", source_name: "q" },
          ],
          value_source_type: "body",
          value_source_name: "user.name",
          ttl: 60,
          on_error_continue: true,
        }),
        op({
          operation_type: "put",
          key_source_type: "header",
          key_source_name: "x-k",
          value_source_type: "header",
          value_source_name: "x-v",
          override: false,
          on_error_continue: true,
        }),
        op({
          operation_type: "get",
          key_source_type: "header",
          key_source_name: "x-k",
          output_destination_type: "body",
          output_destination_name: "meta.v",
          on_error_continue: true,
        }),
        op({
          operation_type: "get",
          key_source_type: "header",
          key_source_name: "x-k",
          output_destination_type: "query",
          output_destination_name: "v",
          on_error_continue: true,
        }),
        op({
          operation_type: "get",
          key_source_type: "header",
          key_source_name: "x-k",
          output_destination_type: "shared_context",
          output_destination_name: "c",
          on_error_continue: true,
        }),
        op({
          operation_type: "get",
          key_source_type: "shared_context",
          key_source_name: "c",
          output_destination_type: "response_header",
          output_destination_name: "x-r",
          default_value: "d",
          on_error_continue: true,
        }),
        op({
          operation_type: "delete",
          key_source_type: "body",
          key_source_name: "user.gone",
          on_error_continue: true,
        }),
        op({
          operation_type: "get",
          key_source_type: "header",
          key_source_name: "x-k",
          output_destination_type: "header",
          output_destination_name: "x-out",
        }),
      ],
    },
    { wasm: RTRACE_WASM, canary: false, instrumentation },
  );
  const worker: Worker = plugin.worker();
  const mix: { path: string; headers: Pairs; body?: string; trailers?: Pairs }[] = [
    {
      path: "/?q=1",
      headers: [
        ["x-k", "a"],
        ["x-v", "v"],
      ],
      body: '{"user":{"name":"n","gone":"a"}}',
    },
    { path: "/?q=%zz", headers: [["x-k", "b"]], body: "not json" },
    { path: "/", headers: [["x-v", "v"]] }, // missing key: local reply 400
    { path: "/?q=2", headers: [["x-k", "c".repeat(600)]], body: "{}" }, // key too large
    {
      path: "/?q=3",
      headers: [
        ["x-k", "d"],
        ["x-v", "line\u0001break"],
      ],
      body: '{"user":{"name":"\\u00e9"}}',
    },
    { path: "/?q=4", headers: [["x-k", "e"]], body: '{"user":{"name":"t"}}', trailers: [["x-t", "1"]] },
  ];
  const round = async () => {
    for (const r of mix)
      await worker.http({ method: r.body ? "POST" : "GET", ...r }, () => ({ status: 200 }));
  };
  const live: number[] = [];
  for (let i = 0; i < 6; i++) {
    for (let j = 0; j < 20; j++) await round();
    live.push(rtrace!.check());
  }
  assert.equal(worker.failed, false);
  assert.deepEqual(problems, []);
  // After the first rounds (metric ids, map growth) the live block count must not move.
  assert.deepEqual(
    live.slice(2),
    [live[1], live[1], live[1], live[1]],
    `live blocks per round: ${live.join(", ")}`,
  );
});
