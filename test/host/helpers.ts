// Shared helpers for the host tests: the probe fixture and a tiny wasm binary assembler for modules
// whose imports/exports a test needs to control exactly.
import { fileURLToPath } from "node:url";
import { LogLevel, startPlugin, type Plugin, type PluginOptions } from "../../host/index.ts";

export const PROBE = fileURLToPath(new URL("../../build/fixtures/probe.wasm", import.meta.url));

let vmCounter = 0;

/** Starts the probe with a vm_id of its own, so tests never share a shared-data store by accident. */
export function startProbe(opts: Partial<PluginOptions> = {}): Promise<Plugin> {
  return startPlugin({ wasm: PROBE, rootId: "probe", vmId: `probe-test-${++vmCounter}`, ...opts });
}

/** The result the probe logged for a command ("<command> -> <result>"), in order. */
export function results(plugin: Plugin, command: string): string[] {
  const prefix = `${command} -> `;
  return plugin
    .getLogs(LogLevel.Info)
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length));
}

export function infoLogs(plugin: Plugin): string[] {
  return plugin.getLogs(LogLevel.Info);
}

export const okUpstream = () => ({ status: 200, body: "upstream" });

// ------------------------------------------------------------------ wasm assembler

type Val = "i32" | "i64";
const VAL: Record<Val, number> = { i32: 0x7f, i64: 0x7e };

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function name(s: string): number[] {
  const b = [...Buffer.from(s, "utf8")];
  return [...leb(b.length), ...b];
}

function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}

function vec(items: number[][]): number[] {
  return [...leb(items.length), ...items.flat()];
}

export interface ImportSpec {
  module: string;
  name: string;
  params: Val[];
  results: Val[];
}

/**
 * A module importing the given functions and exporting memory, an optional ABI marker and an
 * optional malloc (which returns 0 — enough for tests that only link).
 */
export function assemble(opts: {
  imports: ImportSpec[];
  abiMarker?: string | null;
  malloc?: boolean;
  /** Export a function of this name that calls import 0 as proxy_log(2, 16, 2) — "hi" from a data segment. */
  logHiFrom?: string;
}): Uint8Array<ArrayBuffer> {
  const types: number[][] = opts.imports.map((i) => [
    0x60,
    ...vec(i.params.map((p) => [VAL[p]])),
    ...vec(i.results.map((r) => [VAL[r]])),
  ]);
  const voidType = types.length;
  types.push([0x60, 0, 0]);
  const mallocType = types.length;
  types.push([0x60, 1, 0x7f, 1, 0x7f]);
  const imports = opts.imports.map((i, idx) => [...name(i.module), ...name(i.name), 0x00, ...leb(idx)]);
  const funcs: number[][] = [];
  const codes: number[][] = [];
  const exports: number[][] = [[...name("memory"), 0x02, 0]];
  const marker = opts.abiMarker === undefined ? "proxy_abi_version_0_2_0" : opts.abiMarker;
  if (marker) {
    exports.push([...name(marker), 0x00, ...leb(opts.imports.length + funcs.length)]);
    funcs.push(leb(voidType));
    codes.push([2, 0x00, 0x0b]);
  }
  if (opts.malloc ?? true) {
    exports.push([...name("malloc"), 0x00, ...leb(opts.imports.length + funcs.length)]);
    funcs.push(leb(mallocType));
    codes.push([4, 0x00, 0x41, 0x00, 0x0b]);
  }
  const data: number[] = [];
  if (opts.logHiFrom) {
    exports.push([...name(opts.logHiFrom), 0x00, ...leb(opts.imports.length + funcs.length)]);
    funcs.push(leb(voidType));
    // i32.const 2, i32.const 16, i32.const 2, call 0, drop, end
    codes.push([11, 0x00, 0x41, 0x02, 0x41, 0x10, 0x41, 0x02, 0x10, 0x00, 0x1a, 0x0b]);
    data.push(...section(11, vec([[0x00, 0x41, 0x10, 0x0b, ...leb(2), 0x68, 0x69]])));
  }
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(types)),
    ...section(2, vec(imports)),
    ...section(3, vec(funcs)),
    ...section(5, vec([[0x00, 0x01]])),
    ...section(7, vec(exports)),
    ...section(10, vec(codes)),
    ...data,
  ];
  return Uint8Array.from(bytes);
}
