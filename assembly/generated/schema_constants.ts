// Generated from schema/plugin-config.schema.json by scripts/gen-schema-constants.ts; do not edit.
// Run `npm run gen:schema` after changing the schema.

export const LIST_FIELDS: string[] = ["operations", "routes", "kvm_service"];
export const KVM_SERVICE_FIELDS: string[] = [
  "cluster",
  "authority",
  "path_prefix",
  "timeout_ms",
  "token",
  "token_env",
];
export const OPERATION_FIELDS: string[] = [
  "policy",
  "kvm_name",
  "operation_type",
  "key_source_type",
  "key_source_name",
  "key",
  "allow_key_separator",
  "value_source_type",
  "value_source_name",
  "output_destination_type",
  "output_destination_name",
  "ttl",
  "override",
  "default_value",
  "cache_ttl",
  "on_error_continue",
];
export const KEY_FRAGMENT_FIELDS: string[] = ["source_type", "source_name"];
export const POLICY_VALUES: string[] = ["local", "cluster"];
export const OPERATION_TYPE_VALUES: string[] = ["get", "put", "delete"];
export const SOURCE_TYPE_VALUES: string[] = ["header", "query", "body", "shared_context", "literal"];
export const DESTINATION_TYPE_VALUES: string[] = [
  "header",
  "query",
  "body",
  "shared_context",
  "response_header",
];
export const KVM_NAME_MIN_LENGTH: i32 = 1;
export const KVM_NAME_MAX_LENGTH: i32 = 128;
export const KEY_FRAGMENTS_MIN: i32 = 1;
export const KEY_FRAGMENTS_MAX: i32 = 8;
export const TTL_MIN: f64 = 0;
export const TTL_MAX: f64 = 2147483647;
export const CACHE_TTL_MIN: f64 = 0;
export const CACHE_TTL_MAX: f64 = 86400;
export const TIMEOUT_MS_MIN: f64 = 1;
export const TIMEOUT_MS_MAX: f64 = 60000;
// "local", as its index in POLICY_VALUES
export const DEFAULT_POLICY: i32 = 0;
export const DEFAULT_TTL: u32 = 0;
export const DEFAULT_OVERRIDE: bool = true;
export const DEFAULT_ALLOW_KEY_SEPARATOR: bool = false;
export const DEFAULT_CACHE_TTL: u32 = 0;
export const DEFAULT_ON_ERROR_CONTINUE: bool = false;
export const DEFAULT_SERVICE_CLUSTER: string = "kvm_service";
export const DEFAULT_SERVICE_AUTHORITY: string = "kvm-service";
export const DEFAULT_SERVICE_PATH_PREFIX: string = "/v1";
export const DEFAULT_SERVICE_TIMEOUT_MS: u32 = 1000;
export const DEFAULT_SERVICE_TOKEN: string = "";
export const DEFAULT_SERVICE_TOKEN_ENV: string = "KVM_SERVICE_TOKEN";
// names Envoy answers itself before filter state
export const RESERVED_SHARED_CONTEXT_NAMES: string[] = [
  "request",
  "response",
  "connection",
  "upstream",
  "source",
  "destination",
  "metadata",
  "filter_state",
  "upstream_filter_state",
  "xds",
  "context",
  "plugin_name",
  "plugin_root_id",
  "plugin_vm_id",
  "connection_id",
];
