// A deterministic cost measure for the compiled filter: the release build with every memory load
// and store counted. Binaryen's `instrument-memory` pass (binaryen ships with AssemblyScript) puts
// a hook call before each load and store of the optimized release module; the hooks are replaced
// here by functions inside the module that add one to a counter global imported from the test. A
// request's cost is then the number of memory accesses it makes: the same on every run and machine,
// and it includes AssemblyScript's memmove/memcpy, which 0.17 compiles to load/store loops.
// Wall-clock time is not used: timed tests are banned (bench/ measures time).
//
// The counter global comes from import module `cst`, a test-only instrumentation module of the
// Node host (PluginOptions.instrumentation), never something Envoy provides.
import { readFileSync } from "node:fs";
import binaryen from "binaryen";
import { FILTER_WASM } from "./support.ts";

export const COST_MODULE = "cst";

// Counts the memory accesses of one plugin's VMs; read `accesses` before and after a request. Past
// `limit` accesses the module traps (`unreachable`), so a runaway request ends instead of running
// for hours: a test sets a budget with `allow`.
export class CostCounter {
  private readonly count = new WebAssembly.Global({ value: "i64", mutable: true }, 0n);
  private readonly limit = new WebAssembly.Global({ value: "i64", mutable: true }, 2n ** 62n);

  get accesses(): number {
    return Number(this.count.value as bigint);
  }

  // Lets the module make at most `budget` more accesses before it traps.
  allow(budget: number): void {
    this.limit.value = (this.count.value as bigint) + BigInt(Math.ceil(budget));
  }

  imports(): WebAssembly.Imports {
    return { [COST_MODULE]: { count: this.count, limit: this.limit } };
  }

  instrumentation() {
    return { modules: [COST_MODULE], imports: () => this.imports() };
  }
}

let instrumented: WebAssembly.Module | undefined;
// binaryen.js takes null for an unlabelled block; its type declarations want a string.
const NO_LABEL = null as unknown as string;

// The release filter with counted memory accesses (built once per test process).
export function countingFilter(): WebAssembly.Module {
  if (instrumented) return instrumented;
  const module = binaryen.readBinary(readFileSync(FILTER_WASM));
  module.setFeatures(module.getFeatures() | binaryen.Features.MutableGlobals);
  module.runPasses(["instrument-memory"]);
  // binaryen.js takes a fifth argument, `mutable`, that its type declarations do not list.
  const addGlobalImport = module.addGlobalImport as unknown as (
    this: binaryen.Module,
    internalName: string,
    moduleName: string,
    baseName: string,
    type: binaryen.Type,
    mutable: boolean,
  ) => void;
  addGlobalImport.call(module, "cost_count", COST_MODULE, "count", binaryen.i64, true);
  addGlobalImport.call(module, "cost_limit", COST_MODULE, "limit", binaryen.i64, true);
  const { i32, i64, f32, f64 } = binaryen;
  const count = () => module.global.get("cost_count", i64);
  const increment = () =>
    module.block(NO_LABEL, [
      module.global.set("cost_count", module.i64.add(count(), module.i64.const(1, 0))),
      module.if(module.i64.gt_u(count(), module.global.get("cost_limit", i64)), module.unreachable()),
    ]);
  // load_ptr/store_ptr(id, bytes, offset, address) -> address: one access each.
  for (const name of ["load_ptr", "store_ptr"]) {
    module.removeFunction(name);
    const params = binaryen.createType([i32, i32, i32, i32]);
    module.addFunction(
      name,
      params,
      i32,
      [],
      module.block(NO_LABEL, [increment(), module.local.get(3, i32)], i32),
    );
  }
  // load_val_*/store_val_*(id, value) -> value: pass the value through.
  for (const [suffix, type] of [
    ["i32", i32],
    ["i64", i64],
    ["f32", f32],
    ["f64", f64],
  ] as const) {
    for (const name of [`load_val_${suffix}`, `store_val_${suffix}`]) {
      module.removeFunction(name);
      module.addFunction(name, binaryen.createType([i32, type]), type, [], module.local.get(1, type));
    }
  }
  if (!module.validate()) throw new Error("the instrumented filter does not validate");
  const bytes = module.emitBinary();
  module.dispose();
  instrumented = new WebAssembly.Module(Buffer.from(bytes));
  return instrumented;
}
