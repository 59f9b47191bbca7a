// The live stream contexts of this VM by context id, created and deleted by stream_exports.ts; the
// root context finds a callout's waiting streams here. Pointers holding one reference each — the
// only reference that keeps a stream alive — rather than a Map<u32, KvmHttpContext>, so this module
// needs no import of filter.ts (which reads it: no import cycle).
import { __release, __retain } from "rt/index-full";

const streams = new Map<u32, usize>();

export function addStream(contextId: u32, context: usize): void {
  streams.set(contextId, __retain(context));
}

// 0 when there is no such stream (never created, or deleted).
export function streamPointer(contextId: u32): usize {
  if (!streams.has(contextId)) return 0;
  return streams.get(contextId);
}

// Drops the table's reference: the context is freed unless someone else still holds it.
export function dropStream(contextId: u32): void {
  if (!streams.has(contextId)) return;
  const context = streams.get(contextId);
  streams.delete(contextId);
  __release(context);
}
