// Link-time checks Envoy makes before it runs a module (proxy-wasm-cpp-host src/wasm.cc
// WasmBase::load/registerCallbacks/getFunctions and src/v8/v8.cc V8::link):
// - the ABI version comes from an exported marker function; no marker → refused;
// - only the host functions registered for that ABI version may be imported; any other import
//   fails with "missing import: <module>.<name>", a different signature with "import type mismatch";
// - `malloc` (or `proxy_on_memory_allocate`) must be exported.
// Node's WebAssembly API does not expose import signatures, so the type and import sections are
// parsed here.
import type { AbiVersion } from "./abi.ts";

type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref";
export interface FuncSig {
  params: ValType[];
  results: ValType[];
}

export interface ModuleImport {
  module: string;
  name: string;
  kind: "function" | "table" | "memory" | "global";
  sig?: FuncSig;
}

export interface ModuleExport {
  name: string;
  kind: "function" | "table" | "memory" | "global";
  sig?: FuncSig;
}

const VALTYPES: Record<number, ValType> = {
  0x7f: "i32",
  0x7e: "i64",
  0x7d: "f32",
  0x7c: "f64",
  0x7b: "v128",
  0x70: "funcref",
  0x6f: "externref",
};
const KINDS = ["function", "table", "memory", "global"] as const;

export class WasmParseError extends Error {}

class Reader {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly end: number = bytes.length,
  ) {}
  byte(): number {
    if (this.pos >= this.end) throw new WasmParseError("unexpected end of section");
    return this.bytes[this.pos++];
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
      if (shift > 35) throw new WasmParseError("bad LEB128");
    }
  }
  name(): string {
    const len = this.u32();
    if (this.pos + len > this.end) throw new WasmParseError("name past end");
    const s = Buffer.from(this.bytes.subarray(this.pos, this.pos + len)).toString("utf8");
    this.pos += len;
    return s;
  }
  valtype(): ValType {
    const b = this.byte();
    const t = VALTYPES[b];
    if (!t) throw new WasmParseError(`unknown value type 0x${b.toString(16)}`);
    return t;
  }
  limits(): void {
    const flags = this.byte();
    this.u32();
    if (flags & 1) this.u32();
  }
}

export interface ParsedModule {
  imports: ModuleImport[];
  exports: ModuleExport[];
}

/** Reads the type, import, function and export sections of a wasm binary. */
export function parseModule(bytes: Uint8Array): ParsedModule {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WasmParseError("not a wasm binary");
  }
  const types: FuncSig[] = [];
  const imports: ModuleImport[] = [];
  const funcTypeIndices: number[] = []; // for every function: imported ones first, then defined ones
  const exportsRaw: { name: string; kind: number; index: number }[] = [];
  const top = new Reader(bytes);
  top.pos = 8;
  while (top.pos < bytes.length) {
    const id = top.byte();
    const size = top.u32();
    const start = top.pos;
    const r = new Reader(bytes, start + size);
    r.pos = start;
    if (id === 1) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const form = r.byte();
        if (form !== 0x60) throw new WasmParseError("unsupported type form");
        const params: ValType[] = [];
        const results: ValType[] = [];
        for (let p = r.u32(); p > 0; p--) params.push(r.valtype());
        for (let p = r.u32(); p > 0; p--) results.push(r.valtype());
        types.push({ params, results });
      }
    } else if (id === 2) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const module = r.name();
        const name = r.name();
        const kind = r.byte();
        if (kind === 0) {
          const typeIndex = r.u32();
          funcTypeIndices.push(typeIndex);
          imports.push({ module, name, kind: "function", sig: types[typeIndex] });
        } else if (kind === 1) {
          r.byte();
          r.limits();
          imports.push({ module, name, kind: "table" });
        } else if (kind === 2) {
          r.limits();
          imports.push({ module, name, kind: "memory" });
        } else if (kind === 3) {
          r.valtype();
          r.byte();
          imports.push({ module, name, kind: "global" });
        } else {
          throw new WasmParseError(`unknown import kind ${kind}`);
        }
      }
    } else if (id === 3) {
      for (let n = r.u32(); n > 0; n--) funcTypeIndices.push(r.u32());
    } else if (id === 7) {
      for (let n = r.u32(); n > 0; n--) {
        const name = r.name();
        const kind = r.byte();
        const index = r.u32();
        exportsRaw.push({ name, kind, index });
      }
    }
    top.pos = start + size;
  }
  const exports: ModuleExport[] = exportsRaw.map(({ name, kind, index }) => ({
    name,
    kind: KINDS[kind] ?? "global",
    sig: kind === 0 ? types[funcTypeIndices[index]] : undefined,
  }));
  return { imports, exports };
}

const I = "i32" as const;
const L = "i64" as const;
function sig(params: ValType[], results: ValType[] = [I]): FuncSig {
  return { params, results };
}
function words(n: number, results: ValType[] = [I]): FuncSig {
  return sig(Array<ValType>(n).fill(I), results);
}

/** Host functions registered for every ABI version (FOR_ALL_HOST_FUNCTIONS in include/proxy-wasm/exports.h). */
const PROXY_FUNCTIONS: Record<string, FuncSig> = {
  proxy_log: words(3),
  proxy_get_status: words(3),
  proxy_set_property: words(4),
  proxy_get_property: words(4),
  proxy_send_local_response: words(8),
  proxy_get_shared_data: words(5),
  proxy_set_shared_data: words(5),
  proxy_register_shared_queue: words(3),
  proxy_resolve_shared_queue: words(5),
  proxy_dequeue_shared_queue: words(3),
  proxy_enqueue_shared_queue: words(3),
  proxy_get_header_map_value: words(5),
  proxy_add_header_map_value: words(5),
  proxy_replace_header_map_value: words(5),
  proxy_remove_header_map_value: words(3),
  proxy_get_header_map_pairs: words(3),
  proxy_set_header_map_pairs: words(3),
  proxy_get_header_map_size: words(2),
  proxy_get_buffer_status: words(3),
  proxy_get_buffer_bytes: words(5),
  proxy_set_buffer_bytes: words(5),
  proxy_http_call: words(10),
  proxy_grpc_call: words(12),
  proxy_grpc_stream: words(9),
  proxy_grpc_close: words(1),
  proxy_grpc_cancel: words(1),
  proxy_grpc_send: words(4),
  proxy_set_tick_period_milliseconds: words(1),
  proxy_get_current_time_nanoseconds: words(1),
  proxy_define_metric: words(4),
  proxy_increment_metric: sig([I, L]),
  proxy_record_metric: sig([I, L]),
  proxy_get_metric: words(2),
  proxy_set_effective_context: words(1),
  proxy_done: words(0),
  proxy_call_foreign_function: words(6),
};

/** ABI-specific registrations (WasmBase::registerCallbacks). */
const ABI_SPECIFIC: Record<AbiVersion, Record<string, FuncSig>> = {
  "0_1_0": {
    proxy_get_configuration: words(2),
    proxy_continue_request: words(0),
    proxy_continue_response: words(0),
    proxy_clear_route_cache: words(0),
  },
  "0_2_0": { proxy_continue_stream: words(1), proxy_close_stream: words(1) },
  "0_2_1": { proxy_continue_stream: words(1), proxy_close_stream: words(1), proxy_get_log_level: words(1) },
};

const ENV_EXTRAS: Record<string, FuncSig> = {
  pthread_equal: words(2),
  emscripten_notify_memory_growth: words(1, []),
};

/** FOR_ALL_WASI_FUNCTIONS with the signatures declared in include/proxy-wasm/exports.h. */
export const WASI_FUNCTIONS: Record<string, FuncSig> = {
  fd_write: words(4),
  fd_read: words(4),
  fd_seek: sig([I, L, I, I]),
  fd_close: words(1),
  fd_fdstat_get: words(2),
  fd_fdstat_set_flags: words(2),
  fd_fdstat_set_rights: sig([I, L, L]),
  environ_get: words(2),
  environ_sizes_get: words(2),
  args_get: words(2),
  args_sizes_get: words(2),
  clock_time_get: sig([I, L, I]),
  clock_res_get: words(2),
  fd_advise: sig([I, L, L, I]),
  fd_allocate: sig([I, L, L]),
  fd_datasync: words(1),
  fd_filestat_set_size: sig([I, L]),
  fd_filestat_set_times: sig([I, L, L, I]),
  fd_pread: sig([I, I, I, L, I]),
  fd_pwrite: sig([I, I, I, L, I]),
  fd_readdir: sig([I, I, I, L, I]),
  fd_renumber: words(2),
  fd_sync: words(1),
  fd_tell: words(2),
  path_create_directory: words(3),
  path_filestat_set_times: sig([I, I, I, I, L, L, I]),
  path_link: words(6),
  path_readlink: words(6),
  path_remove_directory: words(3),
  path_rename: words(6),
  path_symlink: words(4),
  path_unlink_file: words(3),
  sock_accept: words(3),
  sock_recv: words(6),
  sock_send: words(5),
  sock_shutdown: words(2),
  random_get: words(2),
  sched_yield: words(0),
  poll_oneoff: words(4),
  proc_exit: words(1, []),
  path_open: sig([I, I, I, I, I, L, L, I, I]),
  fd_prestat_get: words(2),
  fd_prestat_dir_name: words(3),
  path_filestat_get: words(5),
  fd_filestat_get: words(2),
};

export const WASI_MODULES = ["wasi_unstable", "wasi_snapshot_preview1"] as const;

/** Every `env` function Envoy registers for an ABI version. */
export function envFunctions(abi: AbiVersion): Record<string, FuncSig> {
  return { ...ENV_EXTRAS, ...PROXY_FUNCTIONS, ...ABI_SPECIFIC[abi] };
}

/** Signatures Envoy expects of the module's callbacks (WasmBase::getFunctions → V8::getModuleFunctionImpl). */
export function moduleCallbackSignatures(abi: AbiVersion): Record<string, FuncSig> {
  const headers = abi === "0_1_0" ? words(2) : words(3);
  return {
    _initialize: words(0, []),
    _start: words(0, []),
    malloc: words(1),
    proxy_on_memory_allocate: words(1),
    proxy_on_context_create: words(2, []),
    proxy_on_vm_start: words(2),
    proxy_on_configure: words(2),
    proxy_validate_configuration: words(2),
    proxy_on_tick: words(1, []),
    proxy_on_request_headers: headers,
    proxy_on_request_body: words(3),
    proxy_on_request_trailers: words(2),
    proxy_on_response_headers: headers,
    proxy_on_response_body: words(3),
    proxy_on_response_trailers: words(2),
    proxy_on_http_call_response: words(5, []),
    proxy_on_done: words(1),
    proxy_on_log: words(1, []),
    proxy_on_delete: words(1, []),
  };
}

function printTypes(types: ValType[]): string {
  return types.length === 0 ? "void" : types.join(" ");
}

function sameSig(a: FuncSig, b: FuncSig): boolean {
  return (
    a.params.length === b.params.length &&
    a.results.length === b.results.length &&
    a.params.every((t, i) => t === b.params[i]) &&
    a.results.every((t, i) => t === b.results[i])
  );
}

export function abiVersionOf(parsed: ParsedModule): AbiVersion | undefined {
  // BytecodeUtil::getAbiVersion looks for these exported marker functions.
  const names = new Set(parsed.exports.filter((e) => e.kind === "function").map((e) => e.name));
  if (names.has("proxy_abi_version_0_2_1")) return "0_2_1";
  if (names.has("proxy_abi_version_0_2_0")) return "0_2_0";
  if (names.has("proxy_abi_version_0_1_0")) return "0_1_0";
  return undefined;
}

/**
 * Returns the first link error Envoy would report for this module, or undefined when it links.
 * Messages follow Envoy's wording.
 */
/** `instrumented`: import modules a test build may use on top of Envoy's (PluginOptions.instrumentationImports). */
export function checkLink(
  parsed: ParsedModule,
  instrumented: string[] = [],
): { abi?: AbiVersion; error?: string } {
  const abi = abiVersionOf(parsed);
  if (!abi) return { error: "Missing or unknown Proxy-Wasm ABI version" };
  const env = envFunctions(abi);
  for (const imp of parsed.imports) {
    const where = `${imp.module}.${imp.name}`;
    if (imp.kind === "memory") continue; // V8::link creates an imported memory itself.
    if (instrumented.includes(imp.module)) continue;
    if (imp.kind !== "function")
      return { abi, error: `Failed to load Wasm module due to a missing import: ${where}` };
    const host =
      imp.module === "env"
        ? env[imp.name]
        : (WASI_MODULES as readonly string[]).includes(imp.module)
          ? WASI_FUNCTIONS[imp.name]
          : undefined;
    if (!host) return { abi, error: `Failed to load Wasm module due to a missing import: ${where}` };
    if (!imp.sig || !sameSig(imp.sig, host)) {
      const want = imp.sig ? `${printTypes(imp.sig.params)} -> ${printTypes(imp.sig.results)}` : "?";
      return {
        abi,
        error:
          `Failed to load Wasm module due to an import type mismatch: ${where}, want: ${want}, ` +
          `but host exports: ${printTypes(host.params)} -> ${printTypes(host.results)}`,
      };
    }
  }
  const exportsByName = new Map(parsed.exports.map((e) => [e.name, e]));
  if (!exportsByName.has("malloc") && !exportsByName.has("proxy_on_memory_allocate")) {
    return { abi, error: "Wasm module is missing malloc function." };
  }
  for (const [name, expected] of Object.entries(moduleCallbackSignatures(abi))) {
    const e = exportsByName.get(name);
    if (e && e.kind === "function" && e.sig && !sameSig(e.sig, expected)) {
      return { abi, error: `Bad function signature for: ${name}` };
    }
  }
  return { abi };
}

/** proxy-wasm-cpp-host limits.h: V8 runs with --wasm_max_mem_pages for 1 GiB. */
export const MAX_MEMORY_PAGES = (1024 * 1024 * 1024) / 65536;

function encodeU32(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/**
 * Returns the module with every defined memory's maximum lowered to `maxPages`, so memory.grow past
 * it fails inside the module as it does under Envoy's V8 flags (the module then usually aborts,
 * which traps). Throws WasmParseError when a memory's minimum is already above the cap.
 */
export function capMemoryPages(
  bytes: Uint8Array,
  maxPages: number = MAX_MEMORY_PAGES,
): Uint8Array<ArrayBuffer> {
  const out: number[] = [...bytes.subarray(0, 8)];
  const top = new Reader(bytes);
  top.pos = 8;
  while (top.pos < bytes.length) {
    const sectionStart = top.pos;
    const id = top.byte();
    const size = top.u32();
    const start = top.pos;
    if (id !== 5) {
      out.push(...bytes.subarray(sectionStart, start + size));
      top.pos = start + size;
      continue;
    }
    const r = new Reader(bytes, start + size);
    r.pos = start;
    const count = r.u32();
    const body: number[] = [...encodeU32(count)];
    for (let i = 0; i < count; i++) {
      const flags = r.byte();
      const min = r.u32();
      const max = flags & 1 ? r.u32() : maxPages;
      if (min > maxPages) throw new WasmParseError(`memory minimum ${min} pages is above ${maxPages}`);
      body.push((flags & ~1) | 1, ...encodeU32(min), ...encodeU32(Math.min(max, maxPages)));
    }
    out.push(5, ...encodeU32(body.length), ...body);
    top.pos = start + size;
  }
  return Uint8Array.from(out);
}
