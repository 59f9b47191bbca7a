// The parsed, validated plugin configuration. Produced by config.ts (pure), consumed by the
// request path. Plain classes: no host calls here.

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
  policy: Policy = Policy.Local;
  kvmName: string = "";
  operationType: OperationType = OperationType.Get;
  // One fragment for key_source_type/key_source_name; several for `key` (joined with "__").
  key: Source[] = [];
  value: Source | null = null; // put only
  output: Destination | null = null; // get only
  ttlSeconds: u32 = 0; // put; 0 = never expires
  override: bool = true; // put; false = keep an existing unexpired value
  defaultValue: string | null = null; // get; written on a miss
  cacheTtlSeconds: u32 = 0; // cluster get read cache
  onErrorContinue: bool = false;
  // Where this operation sits in the configuration, e.g. `operations[2]` or
  // `routes["orders"][0]`; "" for the single-operation (Kong) shape.
  path: string = "";
}

// The `kvm_service` block: how the `cluster` policy reaches the KVM service.
export class KvmService {
  cluster: string = "kvm_service"; // Envoy cluster name of the KVM service
  authority: string = "kvm-service"; // :authority of callouts
  pathPrefix: string = "/v1"; // prefix of the data-plane API paths
  timeoutMs: u32 = 1000; // callout timeout (0 is not allowed: Envoy would wait forever)
  token: string = ""; // bearer token sent as Authorization; "" = none
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
