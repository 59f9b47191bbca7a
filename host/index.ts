// Public API of the Node proxy-wasm host: runs a compiled proxy-wasm module the way Envoy 1.35+ does.
export {
  WasmResult,
  LogLevel,
  FilterHeadersStatus,
  FilterDataStatus,
  FilterTrailersStatus,
  MapType,
  BufferType,
  MetricType,
  StreamType,
  DEFAULT_BUFFER_LIMIT_BYTES,
} from "./abi.ts";
export { ManualClock, systemClock, type Clock } from "./clock.ts";
export { SharedData, sharedDataFor, dropSharedData } from "./shared-data.ts";
export { encodePairs, decodePairs, encodeStringPairs } from "./pairs.ts";
export { checkLink, parseModule } from "./link.ts";
export { startPlugin, Plugin, PluginStartError, type PluginOptions, type LogEntry } from "./plugin.ts";
export { Worker, type HttpContextOptions } from "./worker.ts";
export { StreamStalledError, StreamResetError } from "./stream.ts";
export type { HttpRequest, HttpResult, Upstream, UpstreamAnswer, UpstreamRequest } from "./http-message.ts";
export type { ClusterHandler, ClusterResponse, ClusterAnswer } from "./callouts.ts";
export { endpointHandler, type ClusterEndpoint } from "./upstream.ts";
export type { Direction } from "./direction.ts";
