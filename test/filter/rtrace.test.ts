// Exact leak check: the filter built with AssemblyScript's rtrace (build/kvm_filter.rtrace.wasm)
// reports every allocation and free, so live blocks can be counted after each round of requests.
// memory.test.ts watches the module's memory size, which only moves in large steps; this test sees
// a single leaked block. (The rtrace imports are a test-only host option, not something Envoy gives.)
import { it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Rtrace } from "assemblyscript/lib/rtrace";
import type { Worker } from "../../host/index.ts";
import { startKvm } from "./support.ts";
import { everyPathConfiguration, everyPathRound } from "./every-path.ts";

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
  const plugin = await startKvm(everyPathConfiguration, {
    wasm: RTRACE_WASM,
    canary: false,
    instrumentation,
  });
  const worker: Worker = plugin.worker();
  const round = () => everyPathRound(worker);
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
