// What the host-call modules (one per ABI area, in this folder) need from the VM that imports them.
// Vm implements it; the modules never import vm.ts, so the import graph stays acyclic.
import type { AnyContext, RootContext } from "../context.ts";
import type { PluginCore } from "../core.ts";
import type { VmMemory } from "../memory.ts";

export type ImportFunctions = Record<string, (...args: never[]) => unknown>;

export interface HostApi {
  readonly memory: VmMemory;
  readonly core: PluginCore;
  /** contextOrEffectiveContext(): the effective context if it still exists, else the current one. */
  ctx(): AnyContext;
  rootOf(ctx: AnyContext): RootContext | undefined;
  /** proxy_set_effective_context: false when no context has that id. */
  setEffectiveContext(id: number): boolean;
  log(level: number, message: string): void;
  /** WasmBase::addAfterVmCallAction: runs once the outermost call into the module returned. */
  afterVmCall(action: () => void): void;
  /** WasmBase::stopNextIteration: the running callback's return status no longer continues the stream. */
  stopNextIteration(): void;
  /** proxy_on_queue_ready on this VM's root context (a shared queue it registered got an item). */
  onQueueReady(token: number): void;
}

/** Host-call arguments arrive as i32; Envoy reads them as u32. */
export const u = (n: number): number => n >>> 0;
