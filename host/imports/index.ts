// The import object of one VM: every env function Envoy registers for the module's ABI version
// (host calls the host does not emulate answer Unimplemented), WASI under both module names, and
// test-only instrumentation imports. Each ABI area contributes its part from its own module.
import type { AbiVersion } from "../abi.ts";
import { WASI_FUNCTIONS, WASI_MODULES, envFunctions } from "../link.ts";
import { WasmResult } from "../abi.ts";
import { bufferImports } from "./buffers.ts";
import { headerMapImports } from "./header-maps.ts";
import type { HostApi, ImportFunctions } from "./host-api.ts";
import { httpCallImports, type HttpCalls } from "./http-calls.ts";
import { loggingImports } from "./logging.ts";
import { metricImports } from "./metrics.ts";
import { propertyImports } from "./properties.ts";
import { runtimeImports } from "./runtime.ts";
import { sharedDataImports } from "./shared-data.ts";
import { sharedQueueImports } from "./shared-queues.ts";
import { streamControlImports } from "./stream-control.ts";
import { wasiFunctions } from "./wasi.ts";

const ENOSYS = 52;

export function buildImports(host: HostApi, httpCalls: HttpCalls, abi: AbiVersion): WebAssembly.Imports {
  const impl: ImportFunctions = {
    ...loggingImports(host),
    ...propertyImports(host),
    ...headerMapImports(host),
    ...bufferImports(host),
    ...sharedDataImports(host),
    ...sharedQueueImports(host),
    ...httpCallImports(host, httpCalls),
    ...metricImports(host),
    ...streamControlImports(host),
    ...runtimeImports(host),
  };
  const env: ImportFunctions = {};
  for (const name of Object.keys(envFunctions(abi)))
    env[name] = impl[name] ?? (() => WasmResult.Unimplemented);
  const wasi = wasiFunctions(host.memory, host.core, (level, message) => host.log(level, message));
  const extra = host.core.instrumentation?.imports(() => host.memory.wasmMemory) ?? {};
  const imports: WebAssembly.Imports = { ...extra, env };
  for (const module of WASI_MODULES) {
    const m: ImportFunctions = {};
    for (const name of Object.keys(WASI_FUNCTIONS)) m[name] = wasi[name] ?? (() => ENOSYS);
    imports[module] = m;
  }
  return imports;
}
