// Plugin configurations and what the filter must say about them: `error` is the exact one-line
// message (null = accepted). The same table runs through the compiled filter
// (test/filter/config.test.ts) and through the JSON Schema (test/unit/config-schema.test.ts), so
// the two can only agree. A `config` that is a string is the raw configuration text; anything else
// is serialized with JSON.stringify.

export interface ConfigCase {
  name: string;
  config: unknown | string;
  error: string | null;
}

type Fields = Record<string, unknown>;

const get: Fields = {
  kvm_name: "api-settings",
  operation_type: "get",
  key_source_type: "literal",
  key_source_name: "backend-timeout",
  output_destination_type: "header",
  output_destination_name: "x-timeout",
};

const put: Fields = {
  kvm_name: "sessions",
  operation_type: "put",
  key_source_type: "header",
  key_source_name: "x-session",
  value_source_type: "body",
  value_source_name: "user.id",
};

const del: Fields = {
  kvm_name: "sessions",
  operation_type: "delete",
  key_source_type: "query",
  key_source_name: "session",
};

// `base` with `changes` applied; a change to undefined removes the field.
function op(base: Fields, changes: Fields = {}): Fields {
  const out: Fields = { ...base, ...changes };
  for (const [k, v] of Object.entries(changes)) if (v === undefined) delete out[k];
  return out;
}

function list(...operations: unknown[]): Fields {
  return { operations };
}

function fragment(source_type: unknown, source_name: unknown): Fields {
  return { source_type, source_name };
}

const whole = "must be a whole number ≥ 0";
const notEmpty = "must not be empty";
const sourceTypes = "must be one of header, query, body, shared_context, literal";
const destinationTypes = "must be one of header, query, body, shared_context, response_header";
const kvmNameRule = 'must be 1 to 128 letters, digits, ".", "_" or "-"';
const bodyPathRule = 'must be "" (the whole body) or a dotted path without empty segments';
const printable = "must be printable ASCII without spaces";

export const configCases: ConfigCase[] = [
  // The document as a whole.
  { name: "empty text", config: "", error: "configuration: is empty; expected a JSON object" },
  { name: "only whitespace", config: " \n\t\r ", error: "configuration: is empty; expected a JSON object" },
  {
    name: "truncated JSON",
    config: '{"kvm_name":',
    error: "configuration: not valid JSON (unexpected end of input at byte 12)",
  },
  {
    name: "trailing comma",
    config: '{"operations":[],}',
    error: "configuration: not valid JSON (expected a string key at byte 17)",
  },
  {
    name: "garbage after the object",
    config: "{} x",
    error: "configuration: not valid JSON (unexpected data after the JSON value at byte 3)",
  },
  {
    name: "comments are not JSON",
    config: "// settings\n{}",
    error: "configuration: not valid JSON (unexpected character '/' at byte 0)",
  },
  {
    name: "single quotes are not JSON",
    config: "{'kvm_name':'a'}",
    error: "configuration: not valid JSON (expected a string key at byte 1)",
  },
  {
    name: "nesting beyond 64 levels is refused, not parsed",
    config: `{"default_value":${"[".repeat(70)}${"]".repeat(70)}}`,
    error: "configuration: not valid JSON (nesting deeper than 64 levels at byte 80)",
  },
  { name: "an array", config: [get], error: "configuration: must be a JSON object" },
  { name: "a string", config: '"api-settings"', error: "configuration: must be a JSON object" },
  { name: "null", config: null, error: "configuration: must be a JSON object" },

  // The single-operation (Kong) shape.
  { name: "Kong shape: get from the issue", config: get, error: null },
  {
    name: "Kong shape: put with ttl and override",
    config: op(put, { ttl: 3600, override: false, on_error_continue: true }),
    error: null,
  },
  { name: "Kong shape: delete", config: del, error: null },
  { name: "Kong shape: unknown field", config: op(get, { scope: "x" }), error: "scope: unknown field" },
  {
    name: "Kong shape: unknown fields come first, in source order",
    config: { zz: 1, policy: "nope", aa: 2 },
    error: "zz: unknown field",
  },
  {
    name: "Kong shape: an odd field name is quoted",
    config: op(get, { "kvm name": "x" }),
    error: '["kvm name"]: unknown field',
  },
  { name: "Kong shape: empty object", config: {}, error: "kvm_name: is required" },
  {
    name: "duplicate keys: the last one wins",
    config:
      '{"kvm_name":"a b","operation_type":"delete","key_source_type":"literal","key_source_name":"k","kvm_name":"ok"}',
    error: null,
  },

  // The list shape.
  {
    name: "list: operations, routes and kvm_service",
    config: {
      kvm_service: {
        cluster: "kvm",
        authority: "kvm.internal:8080",
        path_prefix: "/api/v1",
        timeout_ms: 250,
        token: "s3cr3t",
      },
      operations: [get],
      routes: { orders: [put, del], café: [op(get, { policy: "cluster", cache_ttl: 30 })] },
    },
    error: null,
  },
  { name: "list: routes only", config: { routes: { orders: [del] } }, error: null },
  {
    name: "list: an empty route list next to a full one",
    config: { routes: { a: [], b: [del] } },
    error: null,
  },
  {
    name: "list: no operations",
    config: { operations: [] },
    error: 'configuration: has no operations (give "operations" or "routes")',
  },
  {
    name: "list: kvm_service alone",
    config: { kvm_service: {} },
    error: 'configuration: has no operations (give "operations" or "routes")',
  },
  {
    name: "list: only empty route lists",
    config: { operations: [], routes: { a: [] } },
    error: 'configuration: has no operations (give "operations" or "routes")',
  },
  {
    name: "list: unknown top-level field",
    config: { operations: [get], route: {} },
    error: "route: unknown field",
  },
  {
    name: "list: operations not a list",
    config: { operations: get },
    error: "operations: must be a list of operations",
  },
  {
    name: "list: an operation that is not an object",
    config: list(get, "put"),
    error: "operations[1]: must be an object",
  },
  {
    name: "list: routes not an object",
    config: { routes: [[get]] },
    error: "routes: must be an object mapping route names to lists of operations",
  },
  {
    name: "list: a route that is not a list",
    config: { routes: { orders: get } },
    error: 'routes["orders"]: must be a list of operations',
  },
  {
    name: "list: empty route name",
    config: { routes: { "": [get] } },
    error: 'routes[""]: route name must not be empty',
  },
  {
    name: "list: a route operation names its path",
    config: { routes: { orders: [del, op(get, { kvm_name: "a/b" })] } },
    error: `routes["orders"][1].kvm_name: ${kvmNameRule}`,
  },
  {
    name: "list: an operation field names its path",
    config: list(get, op(put, { ttl: -1 })),
    error: `operations[1].ttl: ${whole}`,
  },
  {
    name: "list: unknown operation field",
    config: list(op(get, { output: "x" })),
    error: "operations[0].output: unknown field",
  },

  // kvm_service.
  {
    name: "kvm_service: not an object",
    config: { kvm_service: "kvm", operations: [get] },
    error: "kvm_service: must be an object",
  },
  {
    name: "kvm_service: unknown field",
    config: { kvm_service: { port: 8080 }, operations: [get] },
    error: "kvm_service.port: unknown field",
  },
  {
    name: "kvm_service: empty cluster",
    config: { kvm_service: { cluster: "" }, operations: [get] },
    error: `kvm_service.cluster: ${notEmpty}`,
  },
  {
    name: "kvm_service: cluster not a string",
    config: { kvm_service: { cluster: 1 }, operations: [get] },
    error: "kvm_service.cluster: must be a string",
  },
  {
    name: "kvm_service: empty authority",
    config: { kvm_service: { authority: "" }, operations: [get] },
    error: `kvm_service.authority: ${notEmpty}`,
  },
  {
    name: "kvm_service: authority with a space",
    config: { kvm_service: { authority: "kvm service" }, operations: [get] },
    error: `kvm_service.authority: ${printable}`,
  },
  {
    name: "kvm_service: path_prefix without a leading slash",
    config: { kvm_service: { path_prefix: "v1" }, operations: [get] },
    error: 'kvm_service.path_prefix: must start with "/"',
  },
  {
    name: "kvm_service: path_prefix with a control character",
    config: { kvm_service: { path_prefix: "/v1\r\n" }, operations: [get] },
    error: `kvm_service.path_prefix: ${printable}`,
  },
  {
    name: "kvm_service: timeout_ms 0",
    config: { kvm_service: { timeout_ms: 0 }, operations: [get] },
    error: "kvm_service.timeout_ms: must be a whole number ≥ 1",
  },
  {
    name: "kvm_service: timeout_ms as text",
    config: { kvm_service: { timeout_ms: "1000" }, operations: [get] },
    error: "kvm_service.timeout_ms: must be a whole number ≥ 1",
  },
  {
    name: "kvm_service: timeout_ms fraction",
    config: { kvm_service: { timeout_ms: 2.5 }, operations: [get] },
    error: "kvm_service.timeout_ms: must be a whole number ≥ 1",
  },
  {
    name: "kvm_service: timeout_ms above a minute",
    config: { kvm_service: { timeout_ms: 60001 }, operations: [get] },
    error: "kvm_service.timeout_ms: must be at most 60000",
  },
  {
    name: "kvm_service: timeout_ms bounds",
    config: { kvm_service: { timeout_ms: 60000 }, routes: { r: [op(get, { policy: "cluster" })] } },
    error: null,
  },
  {
    name: "kvm_service: token not a string",
    config: { kvm_service: { token: true }, operations: [get] },
    error: "kvm_service.token: must be a string",
  },
  {
    name: "kvm_service: token with a space",
    config: { kvm_service: { token: "Bearer abc" }, operations: [get] },
    error: `kvm_service.token: ${printable}`,
  },
  {
    name: "kvm_service: token_env not a name",
    config: { kvm_service: { token_env: "KVM-TOKEN" }, operations: [get] },
    error:
      'kvm_service.token_env: must be an environment variable name (letters, digits, "_"; not starting with a digit)',
  },
  {
    name: "kvm_service: token_env starting with a digit",
    config: { kvm_service: { token_env: "1TOKEN" }, operations: [get] },
    error:
      'kvm_service.token_env: must be an environment variable name (letters, digits, "_"; not starting with a digit)',
  },
  {
    name: "kvm_service: token and token_env together",
    config: { kvm_service: { token: "abc", token_env: "KVM_TOKEN" }, operations: [get] },
    error: "kvm_service: give token or token_env, not both",
  },

  // policy, kvm_name, operation_type.
  {
    name: "policy: unknown value",
    config: op(get, { policy: "global" }),
    error: "policy: must be one of local, cluster",
  },
  {
    name: "policy: not a string",
    config: op(get, { policy: 1 }),
    error: "policy: must be one of local, cluster",
  },
  {
    name: "policy: checked before kvm_name",
    config: { policy: "x" },
    error: "policy: must be one of local, cluster",
  },
  { name: "kvm_name: missing", config: op(get, { kvm_name: undefined }), error: "kvm_name: is required" },
  { name: "kvm_name: not a string", config: op(get, { kvm_name: 7 }), error: "kvm_name: must be a string" },
  { name: "kvm_name: empty", config: op(get, { kvm_name: "" }), error: `kvm_name: ${kvmNameRule}` },
  { name: "kvm_name: a slash", config: op(get, { kvm_name: "a/b" }), error: `kvm_name: ${kvmNameRule}` },
  { name: "kvm_name: 128 characters", config: op(get, { kvm_name: "k".repeat(128) }), error: null },
  {
    name: "kvm_name: 129 characters",
    config: op(get, { kvm_name: "k".repeat(129) }),
    error: `kvm_name: ${kvmNameRule}`,
  },
  {
    name: "operation_type: missing",
    config: op(get, { operation_type: undefined }),
    error: "operation_type: is required",
  },
  {
    name: "operation_type: upper case",
    config: op(get, { operation_type: "GET" }),
    error: "operation_type: must be one of get, put, delete",
  },
  {
    name: "operation_type: null",
    config: op(get, { operation_type: null }),
    error: "operation_type: must be one of get, put, delete",
  },

  // The key.
  {
    name: "key: both forms",
    config: op(del, { key: [fragment("literal", "a")] }),
    error: "key: give either key_source_type/key_source_name or key, not both",
  },
  {
    name: "key: key and key_source_name",
    config: op(del, { key_source_type: undefined, key: [fragment("literal", "a")] }),
    error: "key: give either key_source_type/key_source_name or key, not both",
  },
  {
    name: "key: neither form",
    config: op(del, { key_source_type: undefined, key_source_name: undefined }),
    error: "key_source_type: is required (or give key)",
  },
  {
    name: "key: name without type",
    config: op(del, { key_source_type: undefined }),
    error: "key_source_type: is required (or give key)",
  },
  {
    name: "key: type without name",
    config: op(del, { key_source_name: undefined }),
    error: "key_source_name: is required",
  },
  {
    name: "key: unknown source type",
    config: op(del, { key_source_type: "cookie" }),
    error: `key_source_type: ${sourceTypes}`,
  },
  {
    name: "key: name not a string",
    config: op(del, { key_source_name: 5 }),
    error: "key_source_name: must be a string",
  },
  {
    name: "key: pseudo-header",
    config: op(del, { key_source_type: "header", key_source_name: ":path" }),
    error: "key_source_name: must not be a pseudo-header",
  },
  {
    name: "key: header name with a space",
    config: op(del, { key_source_type: "header", key_source_name: "x user" }),
    error: "key_source_name: must be a valid HTTP header name",
  },
  {
    name: "key: empty header name",
    config: op(del, { key_source_type: "header", key_source_name: "" }),
    error: `key_source_name: ${notEmpty}`,
  },
  {
    name: "key: upper-case header name",
    config: op(del, { key_source_type: "header", key_source_name: "X-User" }),
    error: null,
  },
  {
    name: "key: empty query name",
    config: op(del, { key_source_name: "" }),
    error: `key_source_name: ${notEmpty}`,
  },
  {
    name: "key: empty shared_context name",
    config: op(del, { key_source_type: "shared_context", key_source_name: "" }),
    error: `key_source_name: ${notEmpty}`,
  },
  {
    name: "key: empty literal",
    config: op(del, { key_source_type: "literal", key_source_name: "" }),
    error: `key_source_name: ${notEmpty}`,
  },
  {
    name: "key: the whole body",
    config: op(del, { key_source_type: "body", key_source_name: "" }),
    error: null,
  },
  {
    name: "key: body path with an empty segment",
    config: op(del, { key_source_type: "body", key_source_name: "user..id" }),
    error: `key_source_name: ${bodyPathRule}`,
  },
  {
    name: "key: body path with a leading dot",
    config: op(del, { key_source_type: "body", key_source_name: ".id" }),
    error: `key_source_name: ${bodyPathRule}`,
  },
  {
    name: "key: composite of every source type",
    config: op(get, {
      key_source_type: undefined,
      key_source_name: undefined,
      key: [
        fragment("literal", "tenant"),
        fragment("header", "X-Tenant"),
        fragment("query", "id"),
        fragment("body", "items.0.sku"),
        fragment("shared_context", "user"),
      ],
    }),
    error: null,
  },
  {
    name: "key: empty list",
    config: op(del, { key_source_type: undefined, key_source_name: undefined, key: [] }),
    error: "key: must be a list of 1 to 8 key fragments",
  },
  {
    name: "key: nine fragments",
    config: op(del, {
      key_source_type: undefined,
      key_source_name: undefined,
      key: Array.from({ length: 9 }, (_, i) => fragment("literal", `part${i}`)),
    }),
    error: "key: must be a list of 1 to 8 key fragments",
  },
  {
    name: "key: not a list",
    config: op(del, { key_source_type: undefined, key_source_name: undefined, key: "tenant" }),
    error: "key: must be a list of 1 to 8 key fragments",
  },
  {
    name: "key: a fragment that is not an object",
    config: op(del, {
      key_source_type: undefined,
      key_source_name: undefined,
      key: [fragment("literal", "a"), "b"],
    }),
    error: "key[1]: must be an object",
  },
  {
    name: "key: unknown fragment field",
    config: op(del, { key_source_type: undefined, key_source_name: undefined, key: [{ type: "literal" }] }),
    error: "key[0].type: unknown field",
  },
  {
    name: "key: fragment without source_type",
    config: op(del, { key_source_type: undefined, key_source_name: undefined, key: [{ source_name: "a" }] }),
    error: "key[0].source_type: is required",
  },
  {
    name: "key: fragment without source_name",
    config: op(del, {
      key_source_type: undefined,
      key_source_name: undefined,
      key: [{ source_type: "query" }],
    }),
    error: "key[0].source_name: is required",
  },
  {
    name: "key: fragment with an empty literal",
    config: op(del, {
      key_source_type: undefined,
      key_source_name: undefined,
      key: [fragment("literal", "")],
    }),
    error: `key[0].source_name: ${notEmpty}`,
  },
  {
    name: "key: fragment path in the list shape",
    config: list(
      op(del, {
        key_source_type: undefined,
        key_source_name: undefined,
        key: [fragment("literal", "a"), fragment("cookie", "b")],
      }),
    ),
    error: `operations[0].key[1].source_type: ${sourceTypes}`,
  },

  // The value (put).
  {
    name: "value: missing type on put",
    config: op(put, { value_source_type: undefined }),
    error: "value_source_type: is required when operation_type is put",
  },
  {
    name: "value: missing name on put",
    config: op(put, { value_source_name: undefined }),
    error: "value_source_name: is required when operation_type is put",
  },
  {
    name: "value: on get",
    config: op(get, { value_source_type: "literal", value_source_name: "v" }),
    error: "value_source_type: only allowed when operation_type is put",
  },
  {
    name: "value: name on delete",
    config: op(del, { value_source_name: "v" }),
    error: "value_source_name: only allowed when operation_type is put",
  },
  {
    name: "value: empty literal",
    config: op(put, { value_source_type: "literal", value_source_name: "" }),
    error: null,
  },
  {
    name: "value: unknown source type",
    config: op(put, { value_source_type: "form" }),
    error: `value_source_type: ${sourceTypes}`,
  },
  {
    name: "value: bad header name",
    config: op(put, { value_source_type: "header", value_source_name: "x(y)" }),
    error: "value_source_name: must be a valid HTTP header name",
  },
  {
    name: "value: empty shared_context name",
    config: op(put, { value_source_type: "shared_context", value_source_name: "" }),
    error: `value_source_name: ${notEmpty}`,
  },

  // The output (get).
  {
    name: "output: missing type on get",
    config: op(get, { output_destination_type: undefined }),
    error: "output_destination_type: is required when operation_type is get",
  },
  {
    name: "output: missing name on get",
    config: op(get, { output_destination_name: undefined }),
    error: "output_destination_name: is required when operation_type is get",
  },
  {
    name: "output: on put",
    config: op(put, { output_destination_type: "header", output_destination_name: "x-v" }),
    error: "output_destination_type: only allowed when operation_type is get",
  },
  {
    name: "output: name on delete",
    config: op(del, { output_destination_name: "x-v" }),
    error: "output_destination_name: only allowed when operation_type is get",
  },
  {
    name: "output: unknown destination type",
    config: op(get, { output_destination_type: "cookie" }),
    error: `output_destination_type: ${destinationTypes}`,
  },
  {
    name: "output: literal is a source, not a destination",
    config: op(get, { output_destination_type: "literal" }),
    error: `output_destination_type: ${destinationTypes}`,
  },
  {
    name: "output: pseudo-header response header",
    config: op(get, { output_destination_type: "response_header", output_destination_name: ":status" }),
    error: "output_destination_name: must not be a pseudo-header",
  },
  {
    name: "output: empty query name",
    config: op(get, { output_destination_type: "query", output_destination_name: "" }),
    error: `output_destination_name: ${notEmpty}`,
  },
  {
    name: "output: empty shared_context name",
    config: op(get, { output_destination_type: "shared_context", output_destination_name: "" }),
    error: `output_destination_name: ${notEmpty}`,
  },
  {
    name: "output: the whole body",
    config: op(get, { output_destination_type: "body", output_destination_name: "" }),
    error: null,
  },
  {
    name: "output: body path with a trailing dot",
    config: op(get, { output_destination_type: "body", output_destination_name: "settings." }),
    error: `output_destination_name: ${bodyPathRule}`,
  },
  {
    name: "output: upper-case response header",
    config: op(get, { output_destination_type: "response_header", output_destination_name: "X-Cache" }),
    error: null,
  },

  // ttl.
  {
    name: "ttl: on get",
    config: op(get, { ttl: 60 }),
    error: "ttl: only allowed when operation_type is put",
  },
  { name: "ttl: negative", config: op(put, { ttl: -1 }), error: `ttl: ${whole}` },
  { name: "ttl: fraction", config: op(put, { ttl: 1.5 }), error: `ttl: ${whole}` },
  { name: "ttl: text", config: op(put, { ttl: "60" }), error: `ttl: ${whole}` },
  { name: "ttl: null", config: op(put, { ttl: null }), error: `ttl: ${whole}` },
  {
    name: "ttl: above 2^31-1",
    config: op(put, { ttl: 2147483648 }),
    error: "ttl: must be at most 2147483647",
  },
  {
    name: "ttl: overflowing number",
    config:
      '{"kvm_name":"s","operation_type":"put","key_source_type":"literal","key_source_name":"k","value_source_type":"literal","value_source_name":"v","ttl":1e400}',
    error: "ttl: must be at most 2147483647",
  },
  { name: "ttl: largest", config: op(put, { ttl: 2147483647 }), error: null },
  { name: "ttl: zero", config: op(put, { ttl: 0 }), error: null },
  {
    name: "ttl: whole number written with a fraction and exponent",
    config:
      '{"kvm_name":"s","operation_type":"put","key_source_type":"literal","key_source_name":"k","value_source_type":"literal","value_source_name":"v","ttl":6.0e1}',
    error: null,
  },

  // override, default_value, cache_ttl, on_error_continue.
  {
    name: "override: on get",
    config: op(get, { override: false }),
    error: "override: only allowed when operation_type is put",
  },
  { name: "override: text", config: op(put, { override: "false" }), error: "override: must be a boolean" },
  {
    name: "default_value: on put",
    config: op(put, { default_value: "x" }),
    error: "default_value: only allowed when operation_type is get",
  },
  {
    name: "default_value: a number",
    config: op(get, { default_value: 30 }),
    error: "default_value: must be a string",
  },
  { name: "default_value: empty", config: op(get, { default_value: "" }), error: null },
  {
    name: "cache_ttl: on a local get",
    config: op(get, { cache_ttl: 30 }),
    error: "cache_ttl: only allowed when operation_type is get and policy is cluster",
  },
  {
    name: "cache_ttl: on a cluster put",
    config: op(put, { policy: "cluster", cache_ttl: 30 }),
    error: "cache_ttl: only allowed when operation_type is get and policy is cluster",
  },
  {
    name: "cache_ttl: above a day",
    config: op(get, { policy: "cluster", cache_ttl: 86401 }),
    error: "cache_ttl: must be at most 86400",
  },
  {
    name: "cache_ttl: negative",
    config: op(get, { policy: "cluster", cache_ttl: -5 }),
    error: `cache_ttl: ${whole}`,
  },
  {
    name: "cache_ttl: on a cluster get",
    config: op(get, { policy: "cluster", cache_ttl: 86400 }),
    error: null,
  },
  {
    name: "on_error_continue: text",
    config: op(get, { on_error_continue: "yes" }),
    error: "on_error_continue: must be a boolean",
  },
  { name: "on_error_continue: on a delete", config: op(del, { on_error_continue: true }), error: null },
  {
    name: "shared_context source named like an Envoy attribute",
    config: op(put, { value_source_type: "shared_context", value_source_name: "request" }),
    error: 'value_source_name: must not be "request": Envoy answers that name itself, not from filter state',
  },
  {
    name: "shared_context key named like a wasm property",
    config: op(del, { key_source_type: "shared_context", key_source_name: "plugin_vm_id" }),
    error:
      'key_source_name: must not be "plugin_vm_id": Envoy answers that name itself, not from filter state',
  },
  {
    name: "shared_context destination named like an Envoy attribute",
    config: op(get, { output_destination_type: "shared_context", output_destination_name: "xds" }),
    error:
      'output_destination_name: must not be "xds": Envoy answers that name itself, not from filter state',
  },
  {
    name: "shared_context key fragment with NUL",
    config: op(del, {
      key_source_type: undefined,
      key_source_name: undefined,
      key: [{ source_type: "shared_context", source_name: "a\u0000b" }],
    }),
    error: "key[0].source_name: must not contain NUL",
  },
  {
    name: "shared_context names that only contain an attribute name are fine",
    config: op(get, { output_destination_type: "shared_context", output_destination_name: "request.tier" }),
    error: null,
  },
  {
    name: "default_value with a line break, for a header",
    config: op(get, { default_value: "a\r\nx-injected: 1" }),
    error: "default_value: must not contain control characters (other than tab): it is written to a header",
  },
  {
    name: "default_value with a tab and non-ASCII text, for a header",
    config: op(get, { default_value: "a\tbé" }),
    error: null,
  },
  {
    name: "default_value with a line break, for a JSON body field",
    config: op(get, {
      output_destination_type: "body",
      output_destination_name: "a.b",
      default_value: "x\ny",
    }),
    error: null,
  },
  {
    name: "default_value with a lone surrogate",
    config: op(get, { default_value: "a\ud800" }),
    error: "default_value: must be valid Unicode text (no lone surrogates)",
  },
  {
    name: "default_value with a lone low surrogate, for a JSON body field",
    config: op(get, {
      output_destination_type: "body",
      output_destination_name: "a",
      default_value: "\udfff",
    }),
    error: "default_value: must be valid Unicode text (no lone surrogates)",
  },
  {
    name: "default_value with a surrogate pair (an emoji) is fine",
    config: op(get, { default_value: "\ud83d\ude00" }),
    error: null,
  },
  {
    name: "literal value with a lone surrogate",
    config: op(put, { value_source_type: "literal", value_source_name: "\udbff" }),
    error: "value_source_name: must be valid Unicode text (no lone surrogates)",
  },
  {
    name: "literal key with a lone surrogate",
    config: op(del, { key_source_type: "literal", key_source_name: "k\udc00" }),
    error: "key_source_name: must be valid Unicode text (no lone surrogates)",
  },
  {
    name: "literal key fragment with a lone surrogate",
    config: op(del, {
      key_source_type: undefined,
      key_source_name: undefined,
      key: [fragment("header", "x-a"), fragment("literal", "\ud800\ud800")],
    }),
    error: "key[1].source_name: must be valid Unicode text (no lone surrogates)",
  },
  {
    name: "a lone surrogate in a non-literal name is not this rule's business",
    config: op(put, { value_source_type: "query", value_source_name: "\ud800" }),
    error: null,
  },
  ...[
    "node",
    "cluster_name",
    "cluster_metadata",
    "listener_direction",
    "listener_metadata",
    "route_name",
    "route_metadata",
    "upstream_host_metadata",
  ].map((name) => ({
    // Envoy >= 1.33 answers these from filter state (source/extensions/common/wasm/context.cc).
    name: `shared_context named ${name} (an xDS attribute Envoy no longer answers itself)`,
    config: op(put, { value_source_type: "shared_context", value_source_name: name }),
    error: null,
  })),
  {
    name: "shared_context destination named route_name",
    config: op(get, { output_destination_type: "shared_context", output_destination_name: "route_name" }),
    error: null,
  },
  {
    name: "shared_context named context (a CEL attribute root)",
    config: op(get, { output_destination_type: "shared_context", output_destination_name: "context" }),
    error:
      'output_destination_name: must not be "context": Envoy answers that name itself, not from filter state',
  },
  {
    name: "shared_context named connection_id (a wasm property)",
    config: op(put, { value_source_type: "shared_context", value_source_name: "connection_id" }),
    error:
      'value_source_name: must not be "connection_id": Envoy answers that name itself, not from filter state',
  },
  {
    name: "allow_key_separator on a composite key",
    config: op(del, {
      key_source_type: undefined,
      key_source_name: undefined,
      key: [fragment("header", "x-tenant"), fragment("header", "x-user")],
      allow_key_separator: true,
    }),
    error: null,
  },
  {
    name: "allow_key_separator: text",
    config: op(get, { allow_key_separator: "yes" }),
    error: "allow_key_separator: must be a boolean",
  },
];
