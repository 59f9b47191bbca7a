// The cluster policy's memory: thousands of requests with callouts — answered, failed, cached, and
// abandoned by streams that ended first — must leave the module's memory where it was after the
// first rounds (release and debug builds), and free every block they allocate (rtrace build).
import { it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Rtrace } from "assemblyscript/lib/rtrace";
import { ManualClock, type ClusterAnswer, type PluginOptions, type Worker } from "../../host/index.ts";
import { FILTER_DEBUG_WASM, FILTER_WASM, send, startKvm } from "./support.ts";
import { fakeKvmService } from "./fake-kvm.ts";

const RTRACE_WASM = fileURLToPath(new URL("../../build/kvm_filter.rtrace.wasm", import.meta.url));

const cluster = (fields: Record<string, unknown>) => ({ policy: "cluster", kvm_name: "soak", ...fields });
const configuration = {
  routes: {
    put: [
      cluster({
        operation_type: "put",
        key_source_type: "header",
        key_source_name: "x-key",
        value_source_type: "body",
        value_source_name: "v",
      }),
    ],
    get: [
      cluster({
        operation_type: "get",
        key_source_type: "header",
        key_source_name: "x-key",
        output_destination_type: "response_header",
        output_destination_name: "x-value",
        default_value: "none",
        cache_ttl: 1,
      }),
    ],
    delete: [cluster({ operation_type: "delete", key_source_type: "header", key_source_name: "x-key" })],
    failing: [
      cluster({
        operation_type: "get",
        kvm_name: "down",
        key_source_type: "literal",
        key_source_name: "k",
        output_destination_type: "header",
        output_destination_name: "x-out",
      }),
    ],
  },
};

function options(extra: Partial<PluginOptions>): Partial<PluginOptions> & { clock: ManualClock } {
  const fake = fakeKvmService();
  const failures: ClusterAnswer[] = [
    "timeout",
    "connect_failure",
    "reset",
    "reset_after_headers",
    { headers: [[":status", "500"]] },
  ];
  let n = 0;
  return {
    ...extra,
    clock: new ManualClock(1_700_000_000_000),
    clusters: {
      kvm_service: (req: Parameters<typeof fake.handler>[0]) =>
        req.headers.some(([k, v]) => k === ":path" && v.includes("/kvms/down/"))
          ? failures[n++ % failures.length]
          : fake.handler(req),
    },
  };
}

// One round: put, get (callout, then cached), delete, a failing callout, and a stream that ends
// while its callout is out.
async function round(w: Worker, clock: ManualClock, i: number): Promise<void> {
  const key = `k${i % 7}`;
  const ok = (status: number) => assert.ok(status === 200 || status === 503, String(status));
  ok(
    (
      await send(w, {
        path: "/",
        routeName: "put",
        method: "POST",
        headers: [["x-key", key]],
        body: `{"v":"value-${i}"}`,
      })
    ).status,
  );
  ok((await send(w, { path: "/", routeName: "get", headers: [["x-key", key]] })).status);
  ok((await send(w, { path: "/", routeName: "get", headers: [["x-key", key]] })).status);
  ok((await send(w, { path: "/", routeName: "delete", headers: [["x-key", key]] })).status);
  ok((await send(w, { path: "/", routeName: "failing" })).status);
  const id = w.initializeHttpContext({ routeName: "get" });
  w.callOnRequestHeaders(
    id,
    [
      [":method", "GET"],
      [":path", "/"],
      [":authority", "a"],
      ["x-key", key],
    ],
    true,
  );
  w.completeHttpContext(id);
  await w.flushCallouts();
  clock.advance(1_500);
}

for (const [build, wasm] of [
  ["release", FILTER_WASM],
  ["debug", FILTER_DEBUG_WASM],
]) {
  it(`${build} build: memory stays flat over thousands of requests with callouts`, async () => {
    const opts = options({ wasm });
    const plugin = await startKvm(configuration, opts);
    const w = plugin.worker();
    for (let i = 0; i < 50; i++) await round(w, opts.clock, i);
    const settled = w.vm.memory.byteLength;
    for (let i = 0; i < 400; i++) await round(w, opts.clock, i);
    assert.equal(w.failed, false);
    assert.deepEqual(w.pendingCallouts(), []);
    assert.equal(w.vm.memory.byteLength, settled, `grew by ${w.vm.memory.byteLength - settled} bytes`);
  });
}

it("requests with callouts free every block they allocate (rtrace build)", async () => {
  const problems: string[] = [];
  let rtrace: Rtrace | undefined;
  const opts = options({
    wasm: RTRACE_WASM,
    canary: false,
    instrumentation: {
      modules: ["rtrace"],
      imports(memory: () => WebAssembly.Memory | undefined): WebAssembly.Imports {
        rtrace = new Rtrace({
          onerror: (error: Error) => problems.push(error.message),
          getMemory: () => memory()!,
        });
        return { rtrace: rtrace as unknown as WebAssembly.ModuleImports };
      },
    },
  });
  const plugin = await startKvm(configuration, opts);
  const w = plugin.worker();
  const live: number[] = [];
  for (let r = 0; r < 6; r++) {
    for (let i = 0; i < 14; i++) await round(w, opts.clock, i);
    live.push(rtrace!.check());
  }
  assert.equal(w.failed, false);
  assert.deepEqual(problems, []);
  assert.deepEqual(
    live.slice(2),
    [live[1], live[1], live[1], live[1]],
    `live blocks per round: ${live.join(", ")}`,
  );
});
