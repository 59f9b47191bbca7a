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

export class StreamContext {
  readonly kind = "stream" as const;
  readonly filterState = new Map<string, Buffer>();
  readonly overrides = new Map<string, Buffer>();
  readonly startTimeMs: number;

  /** The request headers of the stream (what reaches the upstream). */
  requestHeaders = new HeaderMap("request");
  /** Envoy's request_headers_ != nullptr: headers are held by this filter and may be edited. */
  requestHeadersHeld = false;
  /**
   * Envoy's request_trailers_: the trailers during on_request_trailers and, after a stop, until the
   * filter continues; or the map added from the last body callback (addDecodedTrailers).
   */
  requestTrailers: HeaderMap | undefined;
  responseHeaders: HeaderMap | undefined;
  responseHeadersHeld = false;
  /** Envoy's response_trailers_, like requestTrailers. */
  responseTrailers: HeaderMap | undefined;
  /** The response trailers sent downstream: what on_log reads as map 3 (access_log_response_trailers_). */
  loggedResponseTrailers: HeaderMap | undefined;
  responseCode: number | undefined;
  responseCodeDetails: string | undefined;

  /** The body data of the current body callback (Envoy's request_body_buffer_), or undefined. */
  requestBodyChunk: Buffer | undefined;
  /** Body the filter manager buffered for this filter (StopIterationAndBuffer), or undefined. */
  requestBuffered: Buffer | undefined;
  bufferingRequestBody = false;
  responseBodyChunk: Buffer | undefined;
  responseBuffered: Buffer | undefined;
  bufferingResponseBody = false;
  endOfStream = false;
  /** Low-level API: the body data that last moved on past this filter. */
  lastRequestBody: Buffer | undefined;
  lastResponseBody: Buffer | undefined;

  /** Deferred actions the module asked for (Envoy runs them after the VM call returns). */
  continueRequestRequested = false;
  continueResponseRequested = false;
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
