// Workarounds for @solo-io/proxy-runtime 0.1.8 compiled with AssemblyScript 0.17, kept apart so they
// are easy to drop when either changes.
import { __release } from "rt/index-full";

// The SDK fetches a stream's context for every callback (`getContext(id)`: a Map lookup cast to
// Context), and under AssemblyScript 0.17's reference counting several of those lookups retain the
// context without a matching release. proxy_on_delete then removes it from the SDK's map, but the
// object and everything it holds stay allocated: about half a KiB per request for this filter, so a
// worker's memory would grow until Envoy's 1 GiB cap fails its VM.
//
// Called from the context's onDelete, inside proxy_on_delete, when exactly two references are
// legitimate: the SDK's context map (dropped right after onDelete) and proxy_on_delete's own local
// (dropped when it returns). Anything above that is leaked and is released here, so the context is
// freed when proxy_on_delete returns. test/filter/memory.test.ts holds memory flat across thousands
// of requests on the release and the debug build; releasing one reference too many would trap there
// (the runtime asserts on decrementing a freed block).
//
// This holds only while nothing else keeps a reference to the context when the stream is deleted.
// Code that stores a context elsewhere (e.g. a pending HTTP callout's callback record, for the
// cluster policy) must drop that reference before proxy_on_delete, or count it here.
const LEGITIMATE_REFERENCES_AT_DELETE: u32 = 2;

// rt/common.ts: the reference count is the low 28 bits of the GC info word 16 bytes before an object.
function referenceCount(ptr: usize): u32 {
  return load<u32>(ptr - 16) & ((1 << 28) - 1);
}

export function releaseLeakedContextReferences(ptr: usize): void {
  while (referenceCount(ptr) > LEGITIMATE_REFERENCES_AT_DELETE) __release(ptr);
}
