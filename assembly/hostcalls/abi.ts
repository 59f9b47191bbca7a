// ABI constants (proxy-wasm spec, ABI 0.2.0; docs/envoy-behaviour.md §2).

export const enum WasmResult {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  BadExpression = 5,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  ResultMismatch = 9,
  InternalFailure = 10,
  BrokenConnection = 11,
  Unimplemented = 12,
}

export const enum MapType {
  RequestHeaders = 0,
  ResponseHeaders = 2,
  HttpCallResponseHeaders = 6,
}

export const enum BufferType {
  RequestBody = 0,
  HttpCallResponseBody = 4,
  PluginConfiguration = 7,
}

export const enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5,
}

export const enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}
