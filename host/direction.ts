// The two directions of an HTTP stream. Envoy runs the same filter-manager logic for both (decode:
// the request, encode: the response); what differs is named here once, so the VM, the stream driver
// and the low-level API share one code path per step.
import { BufferType, MapType } from "./abi.ts";
import type { LocalReply } from "./context.ts";

export type Direction = "request" | "response";

export interface DirectionInfo {
  /** The module's callbacks for this direction. */
  readonly onHeaders: string;
  readonly onBody: string;
  readonly onTrailers: string;
  readonly headersMap: number;
  readonly trailersMap: number;
  readonly bodyBuffer: number;
  /**
   * Context::encodeHeaders/encodeData/encodeTrailers return Continue without calling the VM once
   * the 503 wasm_fail_stream reply was sent (failure_local_reply_sent_); the decode side has no
   * such check (the reply ends decoding).
   */
  readonly skippedAfterFailureReply: boolean;
}

export const DIRECTIONS: Readonly<Record<Direction, DirectionInfo>> = {
  request: {
    onHeaders: "proxy_on_request_headers",
    onBody: "proxy_on_request_body",
    onTrailers: "proxy_on_request_trailers",
    headersMap: MapType.RequestHeaders,
    trailersMap: MapType.RequestTrailers,
    bodyBuffer: BufferType.HttpRequestBody,
    skippedAfterFailureReply: false,
  },
  response: {
    onHeaders: "proxy_on_response_headers",
    onBody: "proxy_on_response_body",
    onTrailers: "proxy_on_response_trailers",
    headersMap: MapType.ResponseHeaders,
    trailersMap: MapType.ResponseTrailers,
    bodyBuffer: BufferType.HttpResponseBody,
    skippedAfterFailureReply: true,
  },
};

/** The stream half a header-map type names (0–3), or undefined for the other maps. */
export function mapDirection(type: number): { which: Direction; part: "headers" | "trailers" } | undefined {
  for (const which of ["request", "response"] as const) {
    if (type === DIRECTIONS[which].headersMap) return { which, part: "headers" };
    if (type === DIRECTIONS[which].trailersMap) return { which, part: "trailers" };
  }
  return undefined;
}

/**
 * The filter manager's reply when a buffered body crosses per_connection_buffer_limit_bytes
 * (ActiveStreamDecoderFilter::requestDataTooLarge → 413, ActiveStreamEncoderFilter::
 * responseDataTooLarge → 500; envoy source/common/http/filter_manager.cc).
 */
export function payloadTooLargeReply(which: Direction): LocalReply {
  if (which === "request") {
    return {
      statusCode: 413,
      details: "request_payload_too_large",
      body: Buffer.from("Payload Too Large"),
      headers: [],
      grpcStatus: -1,
    };
  }
  return {
    statusCode: 500,
    details: "response_payload_too_large",
    body: Buffer.from("Internal Server Error"),
    headers: [],
    grpcStatus: -1,
  };
}
