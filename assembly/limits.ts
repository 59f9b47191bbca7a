// Size limits of request-time data, in one place. The bounds of configuration fields (TTLs, the
// number of key fragments, timeouts) come from the JSON Schema: see generated/schema_constants.ts.

// Limits shared with the KVM service, so an entry written locally could also live in the cluster.
export const MAX_KEY_BYTES: i32 = 512;
export const MAX_VALUE_BYTES: i32 = 1024 * 1024;

// JSON documents (configuration and request bodies) nested deeper are rejected rather than parsed:
// recursion depth is the parser's stack use.
export const MAX_JSON_DEPTH: i32 = 64;
