// The parsed, validated plugin configuration. Produced by config.ts (pure), consumed by the
// request path. Plain classes: no host calls here. The defaults are the schema's
// (schema/plugin-config.schema.json, through generated/schema_constants.ts).
import {
  DEFAULT_ALLOW_KEY_SEPARATOR,
  DEFAULT_CACHE_TTL,
  DEFAULT_ON_ERROR_CONTINUE,
  DEFAULT_OVERRIDE,
  DEFAULT_POLICY,
  DEFAULT_SERVICE_AUTHORITY,
  DEFAULT_SERVICE_CLUSTER,
  DEFAULT_SERVICE_PATH_PREFIX,
  DEFAULT_SERVICE_TIMEOUT_MS,
  DEFAULT_SERVICE_TOKEN,
  DEFAULT_SERVICE_TOKEN_ENV,
  DEFAULT_TTL,
} from "./generated/schema_constants";

// Each enum's values are in the order of the schema's enum (generated/schema_constants.ts
// POLICY_VALUES and the like): a name's index there is its value here.
export enum Policy {
  Local = 0,
  Cluster = 1,
}

export enum OperationType {
  Get = 0,
  Put = 1,
  Delete = 2,
}

// Where a key fragment or a value comes from.
export enum SourceType {
  Header = 0,
  Query = 1,
  Body = 2,
  SharedContext = 3,
  Literal = 4,
}

// Where a get writes its result.
export enum DestinationType {
  Header = 0,
  Query = 1,
  Body = 2,
  SharedContext = 3,
  ResponseHeader = 4,
}

export class Source {
  constructor(
    public type: SourceType,
    // Header name (lower-cased), query parameter name, dotted JSON path ("" = whole body),
    // shared-context name, or the literal text.
    public name: string,
  ) {}
}

export class Destination {
  constructor(
    public type: DestinationType,
    // Header name (lower-cased), query parameter name, dotted JSON path ("" = whole body),
    // shared-context name.
    public name: string,
  ) {}
}

export class Operation {
  policy: Policy = <Policy>DEFAULT_POLICY;
  kvmName: string = "";
  operationType: OperationType = OperationType.Get;
  // One fragment for key_source_type/key_source_name; several for `key` (joined with "__").
  key: Source[] = [];
  // false: a composite key's request fragments may not contain "__" or begin or end with "_"
  // (they could address another combination's entry); true joins them as they are (Apigee).
  allowKeySeparator: bool = DEFAULT_ALLOW_KEY_SEPARATOR;
  value: Source | null = null; // put only
  output: Destination | null = null; // get only
  ttlSeconds: u32 = DEFAULT_TTL; // put; 0 = never expires
  override: bool = DEFAULT_OVERRIDE; // put; false = keep an existing unexpired value
  defaultValue: string | null = null; // get; written on a miss
  cacheTtlSeconds: u32 = DEFAULT_CACHE_TTL; // cluster get read cache
  onErrorContinue: bool = DEFAULT_ON_ERROR_CONTINUE;
  // Where this operation sits in the configuration, e.g. `operations[2]` or
  // `routes["orders"][0]`; "" for the single-operation (Kong) shape.
  path: string = "";
  // Counter and histogram ids of this operation by result ("hit", "callout_2xx", …): metric ids are per
  // VM and so is this Operation, so each is defined once and no name is built on the request path.
  metricIds: Map<string, u32> = new Map<string, u32>();
}

// The `kvm_service` block: how the `cluster` policy reaches the KVM service.
export class KvmService {
  cluster: string = DEFAULT_SERVICE_CLUSTER; // Envoy cluster name of the KVM service
  authority: string = DEFAULT_SERVICE_AUTHORITY; // :authority of callouts
  pathPrefix: string = DEFAULT_SERVICE_PATH_PREFIX; // prefix of the data-plane API paths
  timeoutMs: u32 = DEFAULT_SERVICE_TIMEOUT_MS; // callout timeout (0 is not allowed: Envoy would wait forever)
  token: string = DEFAULT_SERVICE_TOKEN; // bearer token sent as Authorization; "" = see tokenEnv
  // Environment variable of the VM holding the token (read once, at configuration time).
  tokenEnv: string = DEFAULT_SERVICE_TOKEN_ENV;
  // token_env was given: its variable must be set (the default one may be absent).
  tokenEnvGiven: bool = false;
}

export class RouteOperations {
  constructor(
    public routeName: string,
    public operations: Operation[],
  ) {}
}

export class PluginConfig {
  kvmService: KvmService | null = null;
  // Run for every request, first.
  operations: Operation[] = [];
  // Then the list whose name equals the request's xds.route_name.
  routes: RouteOperations[] = [];
}

// Either a configuration or the one-line reason it was rejected.
export class ParseResult {
  constructor(
    public config: PluginConfig | null,
    public error: string,
  ) {}
}
