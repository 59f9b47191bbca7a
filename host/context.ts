// Per-VM context objects, mirroring proxy-wasm-cpp-host ContextBase and Envoy's Context
// (envoy source/extensions/common/wasm/context.cc). A StreamContext keeps exactly the state Envoy's
// Context keeps between callbacks — in particular which header maps and body buffers it still holds,
// because that decides what the host calls may touch.
import { HeaderMap } from "./header-map.ts";

export interface LocalReply {
  statusCode: number;
  details: string;
  body: Buffer;
  headers: [string, string][]; // extra headers given by the module, latin1
  grpcStatus: number;
}

export interface HttpCallResponse {
  headers: HeaderMap;
  body: Buffer;
  trailers: HeaderMap;
}

export class RootContext {
  readonly kind = "root" as const;
  /** proxy_get_status: set to BrokenConnection by a failed callout, as Envoy's onHttpCallFailure does. */
  statusCode = 0;
  statusMessage = "";
  /** Set only while proxy_on_http_call_response runs (Envoy's http_call_response_). */
  httpCallResponse: HttpCallResponse | undefined;
  /** Set only while on_configure / on_vm_start's on_context_create runs (Envoy's temp_plugin_). */
  pluginConfigurationVisible = false;
  tickPeriodMs = 0;
  constructor(readonly id: number) {}
}

/** The VM context (id 0) that is current while the module's start function and _initialize run. */
export class VmContext {
  readonly kind = "vm" as const;
  readonly id = 0;
  statusCode = 0;
  statusMessage = "";
}

/**
 * What Envoy's Context keeps for one direction of a stream (request_headers_, request_body_buffer_,
 * request_trailers_, and the filter manager's buffered body for this filter); the response side
 * mirrors it.
 */
export class StreamHalf {
  /** The headers of this direction (what goes on past the filter). */
  headers: HeaderMap | undefined;
  /** Envoy's request_headers_ != nullptr: headers are held by this filter and may be edited. */
  headersHeld = false;
  /**
   * Envoy's request_trailers_: the trailers during the trailers callback and, after a stop, until
   * the filter continues; or the map added from the last body callback (addDecodedTrailers).
   */
  trailers: HeaderMap | undefined;
  /**
   * The trailers sent on, as on_log reads them. Envoy keeps only the response's
   * (access_log_response_trailers_); the request's stays undefined (map 1 is NotFound in on_log).
   */
  loggedTrailers: HeaderMap | undefined;
  /** The body data of the current body callback (Envoy's request_body_buffer_), or undefined. */
  bodyChunk: Buffer | undefined;
  /** Body the filter manager buffered for this filter (StopIterationAndBuffer), or undefined. */
  buffered: Buffer | undefined;
  bufferingBody = false;
  /** Low-level API: the body data that last moved on past this filter. */
  lastBody: Buffer | undefined;
  /** proxy_continue_stream asked to resume this direction (run after the VM call). */
  continueRequested = false;

  constructor(headers?: HeaderMap) {
    this.headers = headers;
  }
}

export class StreamContext {
  readonly kind = "stream" as const;
  readonly filterState = new Map<string, Buffer>();
  readonly overrides = new Map<string, Buffer>();
  readonly startTimeMs: number;

  readonly request = new StreamHalf(new HeaderMap("request"));
  readonly response = new StreamHalf();
  responseCode: number | undefined;
  responseCodeDetails: string | undefined;
  endOfStream = false;

  /** Deferred actions the module asked for (Envoy runs them after the VM call returns). */
  resetRequested = false;
  localReply: LocalReply | undefined;
  /** Envoy's failure_local_reply_sent_: the 503 wasm_fail_stream reply; the VM is not called again. */
  failureLocalReplySent = false;
  /** access-log phase: on_log sees the final request/response headers read-only. */
  accessLogPhase = false;
  completed = false;
  /** Downstream connection id (CEL connection.id): one connection per request here. */
  connectionId = 0;
  statusCode = 0;
  statusMessage = "";

  constructor(
    readonly id: number,
    readonly rootId: number,
    readonly routeName: string | undefined,
    startTimeMs: number,
  ) {
    this.startTimeMs = startTimeMs;
  }
}

export type AnyContext = RootContext | StreamContext | VmContext;
