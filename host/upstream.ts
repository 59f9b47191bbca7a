// A cluster backed by a real address (PluginOptions.clusters: `{ address: "127.0.0.1:8081" }`): the
// callout goes out over HTTP/1.1 and each way it can fail becomes the answer Envoy's AsyncClient
// gives (../callouts.ts turns those into the callback the module sees):
// - the callout's timeout (0 = none, as in Envoy) runs from the start of the call until the
//   response is complete; expiring before the response headers → `timeout` (504), after them →
//   `reset_after_headers` (the router resets a stream whose response started);
// - a refused or unreachable connection → `connect_failure` (503);
// - the connection closing before response headers → `reset` (503), after them →
//   `reset_after_headers`; an answer that is not HTTP → `protocol_error` (503, the codec's reset);
// - a body over 32 MiB → a failure callback (calloutOutcome checks the size; reading stops there).
// Connections are pooled per cluster like Envoy's (keep-alive agent).
import http from "node:http";
import { HTTP_CALL_MAX_RESPONSE_BYTES } from "./abi.ts";
import type { ClusterAnswer, ClusterHandler } from "./callouts.ts";

/** A cluster's single endpoint, `host:port` (IPv6 as `[::1]:8081`). */
export interface ClusterEndpoint {
  address: string;
}

const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
]);

function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m) throw new TypeError(`cluster address ${JSON.stringify(address)} is not host:port`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i].toLowerCase(), raw[i + 1]]);
  return out;
}

export function endpointHandler(endpoint: ClusterEndpoint): ClusterHandler {
  const { host, port } = parseAddress(endpoint.address);
  const agent = new http.Agent({ keepAlive: true });
  return (req) =>
    new Promise<ClusterAnswer>((resolve) => {
      let settled = false;
      let responseStarted = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (answer: ClusterAnswer) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        resolve(answer);
      };
      const headers: Record<string, string | string[]> = {};
      let method = "GET";
      let path = "/";
      for (const [k, v] of req.headers) {
        if (k === ":method") method = v;
        else if (k === ":path") path = v;
        else if (k === ":authority") headers.host = v;
        else if (k.startsWith(":")) continue;
        else if (headers[k] === undefined) headers[k] = v;
        else headers[k] = ([] as string[]).concat(headers[k], v);
      }
      const outgoing = http.request({ host, port, method, path, headers, agent, setHost: false });
      if (req.timeoutMs > 0) {
        timer = setTimeout(() => {
          settle(responseStarted ? "reset_after_headers" : "timeout");
          outgoing.destroy();
        }, req.timeoutMs);
      }
      outgoing.on("error", (err: NodeJS.ErrnoException) => {
        if (responseStarted) settle("reset_after_headers");
        else if (err.code !== undefined && CONNECT_ERRORS.has(err.code)) settle("connect_failure");
        else if (err.code?.startsWith("HPE_")) settle("protocol_error");
        else settle("reset");
      });
      outgoing.on("response", (res) => {
        responseStarted = true;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          if (size > HTTP_CALL_MAX_RESPONSE_BYTES) return;
          chunks.push(chunk);
          size += chunk.length;
        });
        res.on("aborted", () => settle("reset_after_headers"));
        res.on("error", () => settle("reset_after_headers"));
        res.on("end", () => {
          if (!res.complete) {
            settle("reset_after_headers");
            return;
          }
          settle({
            headers: [[":status", String(res.statusCode ?? 0)], ...pairs(res.rawHeaders)],
            body: Buffer.concat(chunks),
            trailers: pairs(res.rawTrailers),
          });
        });
      });
      outgoing.end(req.body);
    });
}
