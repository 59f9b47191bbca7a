// HTTP callouts as Envoy answers them (envoy source/extensions/common/wasm/context.cc
// Context::httpCall, onHttpCallSuccess, onHttpCallFailure; docs/envoy-behaviour.md §4).
import { HTTP_CALL_MAX_RESPONSE_BYTES } from "./abi.ts";
import { HeaderMap } from "./header-map.ts";

export type ClusterResponse = {
  headers: [string, string][];
  body?: Buffer | Uint8Array | string;
  trailers?: [string, string][];
};
/**
 * How the upstream answered: a response, or how it failed — `timeout` (no complete response within
 * the callout's timeout), `connect_failure` (no connection: refused, unreachable), `reset` (the
 * connection closed before response headers), `protocol_error` (the answer was not HTTP),
 * `reset_after_headers` (it closed after the response headers).
 */
export type ClusterAnswer =
  ClusterResponse | "timeout" | "connect_failure" | "reset" | "protocol_error" | "reset_after_headers";
/** The upstream behind a cluster name: answers a callout, or says how it failed. */
export type ClusterHandler = (req: {
  headers: [string, string][];
  body: Buffer;
  timeoutMs: number;
}) => Promise<ClusterAnswer> | ClusterAnswer;

export type CalloutOutcome =
  { kind: "response"; headers: HeaderMap; body: Buffer; trailers: HeaderMap } | { kind: "failure" };

export interface PendingCallout {
  token: number;
  rootId: number;
  cluster: string;
  request: { headers: [string, string][]; body: Buffer; timeoutMs: number };
  settled: Promise<number>;
  outcome?: CalloutOutcome;
}

function toBuffer(body: Buffer | Uint8Array | string | undefined): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
}

export function calloutOutcome(answer: unknown): CalloutOutcome {
  const localReply = (status: number, body: string) => {
    const headers = new HeaderMap();
    headers.add(":status", String(status));
    headers.add("content-length", String(Buffer.byteLength(body)));
    headers.add("content-type", "text/plain");
    return { kind: "response" as const, headers, body: Buffer.from(body), trailers: new HeaderMap() };
  };
  // Envoy's AsyncClient runs the router filter, so a timeout is the router's 504 local reply and a
  // failed connection or a reset before response headers its 503 (envoy source/common/router/
  // router.cc onResponseTimeout, onUpstreamReset: "upstream connect error or disconnect/reset before
  // headers. reset reason: <reason>[, transport failure reason: <why>]"; the reasons from
  // Http::Utility::resetReasonToString, the connect error from Network::ConnectionImpl). A reset
  // after headers (or a body over 32 MiB) is a failure callback (AsyncRequestImpl::onReset).
  if (answer === "timeout") return localReply(504, "upstream request timeout");
  if (answer === "connect_failure") {
    return localReply(
      503,
      "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, " +
        "transport failure reason: delayed connect error: Connection refused",
    );
  }
  if (answer === "protocol_error") {
    return localReply(
      503,
      "upstream connect error or disconnect/reset before headers. reset reason: protocol error",
    );
  }
  if (answer === "reset") {
    return localReply(
      503,
      "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
    );
  }
  if (answer === "reset_after_headers") return { kind: "failure" };
  const response = answer as ClusterResponse;
  const headers = HeaderMap.fromPairs(response.headers ?? []);
  if (!headers.has(":status")) headers.add(":status", "200");
  const body = toBuffer(response.body);
  if (body.length > HTTP_CALL_MAX_RESPONSE_BYTES) return { kind: "failure" };
  return { kind: "response", headers, body, trailers: HeaderMap.fromPairs(response.trailers ?? []) };
}
