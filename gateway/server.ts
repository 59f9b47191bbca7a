// The local gateway: serves an envoy.yaml (the part gateway/config.ts accepts) with the Node
// proxy-wasm host — listeners, route matching, route names, per-route enabling of disabled wasm
// filters, the wasm filters in order (each plugin with `workers` VMs over one shared-data store per
// vm_id), and the router to the clusters. One access log line per request. Production runs Envoy:
// what the gateway does not model is listed in docs/gateway.md.
import { existsSync } from "node:fs";
import {
  STATUS_CODES,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import {
  endpointHandler,
  startPlugin,
  type ClusterHandler,
  type HttpRequest,
  type HttpResult,
  type Plugin,
  type UpstreamAnswer,
  type UpstreamRequest,
} from "../host/index.ts";
import type { ClusterSpec, GatewayConfig, ListenerSpec, RouteSpec, WasmFilterSpec } from "./config.ts";
import { matchRoute } from "./match.ts";

export interface GatewayOptions {
  /** Cluster name → "host:port", replacing the cluster's endpoints (e.g. `upstream=127.0.0.1:8080`). */
  clusters?: Record<string, string>;
  /** Listener name → "host:port" to listen on instead of the configured address (port 0 = any free port). */
  listen?: Record<string, string>;
  /** Path in the configuration → local path, for files such as the .wasm (e.g. `/etc/envoy/kvm_filter.wasm`). */
  files?: Record<string, string>;
  /** VMs per plugin, like Envoy's worker threads (default 2). */
  workers?: number;
  /** One line per request, and start-up notes. Default: stdout. */
  log?: (line: string) => void;
  /** The lowest wasm log level written to `log` (0 trace … 5 critical), like Envoy's
   * `--component-log-level wasm:<level>`; default 2 (info). */
  wasmLogLevel?: number;
}

export interface RunningGateway {
  /** Listener name → the URL it serves. */
  urls: Record<string, string>;
  /** Every listener's wasm filters by name: their stats (Envoy's /stats) and logs. */
  plugins: Map<string, Plugin>;
  stop(): Promise<void>;
}

// Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded, in either direction.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "te",
]);

function hostPort(value: string, what: string): { address: string; port: number } {
  const at = value.lastIndexOf(":");
  const port = Number(value.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${what}: expected host:port, not ${value}`);
  }
  return { address: value.slice(0, at), port };
}

// The request target as Envoy's HTTP/1 codec takes it: an absolute URL (absolute-form, RFC 9112 3.2.2)
// gives the authority and the path; anything else that is not a path is refused (null).
function requestTarget(url: string, host: string | undefined): { path: string; authority: string } | null {
  if (url.startsWith("/")) return { path: url, authority: host ?? "" };
  const absolute = /^https?:\/\/([^/?#]+)(.*)$/i.exec(url);
  if (absolute === null) return null;
  const rest = absolute[2];
  return { path: rest.startsWith("/") ? rest : `/${rest}`, authority: absolute[1] };
}

// Envoy's virtual host choice (route/v3 VirtualHost.domains): an exact domain, then the longest suffix
// wildcard ("*.foo.com", "*-bar.foo.com"), then the longest prefix wildcard ("foo.*"), then "*". A wildcard
// never matches the empty string.
export function virtualHostRoutes(listener: ListenerSpec, host: string | undefined): RouteSpec[] | null {
  const name = (host ?? "").toLowerCase().replace(/:\d+$/, "");
  const exact = listener.virtualHosts.find((vh) => vh.domains.includes(name));
  if (exact) return exact.routes;
  let best: { routes: RouteSpec[]; rank: number } | null = null;
  for (const vh of listener.virtualHosts) {
    for (const domain of vh.domains) {
      if (domain === "*" || domain.length > name.length) continue; // "*" stands for one character or more
      // Any suffix wildcard outranks every prefix one; among each kind, the longer wins.
      let rank = 0;
      if (domain.startsWith("*") && name.endsWith(domain.slice(1))) rank = 1_000_000 + domain.length;
      else if (domain.endsWith("*") && name.startsWith(domain.slice(0, -1))) rank = domain.length;
      if (rank > 0 && (best === null || rank > best.rank)) best = { routes: vh.routes, rank };
    }
  }
  if (best !== null) return best.routes;
  return listener.virtualHosts.find((vh) => vh.domains.includes("*"))?.routes ?? null;
}

// The access log's path: query values redacted, since an operation may take its key or value from the
// query (Envoy's default access log format prints the whole :path; docs/gateway.md).
function loggedPath(path: string): string {
  return path.replace(/([?&][^=&]*)=[^&]*/g, "$1=[redacted]");
}

// %FILTER_STATE(key:PLAIN)% in a request_headers_to_add value; an empty result adds no header.
function formatHeader(value: string, filterState: Map<string, Buffer>): string {
  return value.replace(
    /%FILTER_STATE\(([^:)]+)(?::PLAIN)?\)%/g,
    (_, key: string) => filterState.get(key)?.toString("latin1") ?? "",
  );
}

function forward(
  endpoint: { address: string; port: number },
  method: string,
  path: string,
  headers: [string, string][],
  body: Buffer,
  timeoutMs: number | null,
): Promise<{ status: number; headers: [string, string][]; body: Buffer } | "timeout" | "reset"> {
  return new Promise((resolve) => {
    const outgoing = httpRequest(
      {
        host: endpoint.address,
        port: endpoint.port,
        method,
        path,
        headers: headers.map(([k, v]) => [k, v]).flat(),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const out: [string, string][] = [];
          for (let i = 0; i + 1 < response.rawHeaders.length; i += 2) {
            const name = response.rawHeaders[i].toLowerCase();
            if (!HOP_BY_HOP.has(name)) out.push([name, response.rawHeaders[i + 1]]);
          }
          resolve({ status: response.statusCode ?? 502, headers: out, body: Buffer.concat(chunks) });
        });
        response.on("error", () => resolve("reset"));
      },
    );
    if (timeoutMs !== null && timeoutMs > 0) {
      outgoing.setTimeout(timeoutMs, () => {
        outgoing.destroy();
        resolve("timeout");
      });
    }
    outgoing.on("error", () => resolve("reset"));
    outgoing.end(body);
  });
}

// The router: the request as the last filter let it go, to the route's cluster.
async function route(cluster: ClusterSpec, spec: RouteSpec, up: UpstreamRequest): Promise<UpstreamAnswer> {
  const pseudo = new Map(up.headers.filter(([k]) => k.startsWith(":")));
  const headers: [string, string][] = up.headers.filter(([k]) => !k.startsWith(":") && !HOP_BY_HOP.has(k));
  headers.push(["host", pseudo.get(":authority") ?? ""]);
  for (const add of spec.requestHeadersToAdd) {
    const value = formatHeader(add.value, up.filterState);
    if (value === "") continue;
    if (!add.append)
      for (let i = headers.length - 1; i >= 0; i--) if (headers[i][0] === add.key) headers.splice(i, 1);
    headers.push([add.key, value]);
  }
  const endpoint = cluster.endpoints[0];
  const answer = endpoint
    ? await forward(
        endpoint,
        pseudo.get(":method") ?? "GET",
        pseudo.get(":path") ?? "/",
        headers,
        up.body,
        spec.timeoutMs,
      )
    : "reset";
  if (answer === "timeout") {
    return { status: 504, headers: [["content-type", "text/plain"]], body: "upstream request timeout" };
  }
  if (answer === "reset") {
    return {
      status: 503,
      headers: [["content-type", "text/plain"]],
      body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    };
  }
  return answer;
}

// A callout (proxy_http_call) to a cluster: the host's endpoint handler sends it and reports each
// failure the way Envoy's async client does (host/upstream.ts). No endpoint: no healthy upstream.
function calloutHandler(cluster: ClusterSpec): ClusterHandler | null {
  const endpoint = cluster.endpoints[0];
  if (!endpoint) return null;
  const host = endpoint.address.includes(":") ? `[${endpoint.address}]` : endpoint.address;
  return endpointHandler({ address: `${host}:${endpoint.port}` });
}

// The next filter sees the request as the previous one let it go, with the filter state it left.
function nextRequest(up: UpstreamRequest, routeName: string): HttpRequest {
  const pseudo = new Map(up.headers.filter(([k]) => k.startsWith(":")));
  const filterState: Record<string, Uint8Array> = {};
  for (const [key, value] of up.filterState) if (key.startsWith("wasm.")) filterState[key.slice(5)] = value;
  return {
    method: pseudo.get(":method"),
    path: pseudo.get(":path") ?? "/",
    authority: pseudo.get(":authority"),
    scheme: pseudo.get(":scheme"),
    headers: up.headers.filter(([k]) => !k.startsWith(":")),
    body: up.body,
    routeName,
    filterState,
  };
}

async function runChain(
  chain: Plugin[],
  worker: number,
  request: HttpRequest,
  router: (up: UpstreamRequest) => Promise<UpstreamAnswer>,
): Promise<HttpResult> {
  const [first, ...rest] = chain;
  return first.worker(worker % first.workers.length).http(request, async (up) => {
    if (rest.length === 0) return router(up);
    const result = await runChain(rest, worker, nextRequest(up, request.routeName ?? ""), router);
    return { status: result.status, headers: result.headers, body: result.body, trailers: result.trailers };
  });
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

async function startPlugins(
  filters: WasmFilterSpec[],
  listener: ListenerSpec,
  clusters: Map<string, ClusterSpec>,
  options: GatewayOptions,
  log: (line: string) => void,
): Promise<Map<string, Plugin>> {
  const handlers: Record<string, ClusterHandler | null> = {};
  for (const [name, spec] of clusters) handlers[name] = calloutHandler(spec);
  const plugins = new Map<string, Plugin>();
  for (const filter of filters) {
    const wasm = options.files?.[filter.wasmFile] ?? filter.wasmFile;
    if (!existsSync(wasm)) {
      throw new Error(
        `${filter.name}: ${wasm} does not exist (map it with --file ${filter.wasmFile}=<local path>)`,
      );
    }
    const plugin = await startPlugin({
      wasm,
      rootId: filter.rootId,
      vmId: filter.vmId,
      pluginName: filter.pluginName,
      configuration: filter.configuration,
      workers: options.workers ?? 2,
      allowOnHeadersStopIteration: filter.allowOnHeadersStopIteration,
      failOpen: filter.failOpen,
      bufferLimitBytes: listener.bufferLimitBytes,
      clusters: handlers,
      environment: filter.environment,
      logSink: (level, message) => {
        if (level >= (options.wasmLogLevel ?? 2))
          log(`wasm log ${filter.pluginName} (${filter.rootId}): ${message}`);
      },
    });
    plugins.set(filter.name, plugin);
  }
  return plugins;
}

function answer(
  res: ServerResponse,
  result: { status: number; headers: [string, string][]; body: Buffer },
): void {
  const headers: [string, string][] = result.headers.filter(
    ([k]) => !HOP_BY_HOP.has(k) && k !== "content-length",
  );
  headers.push(["content-length", String(result.body.length)]);
  res.writeHead(result.status, headers.flat());
  res.end(result.body);
}

// Requests Node's HTTP parser refuses before a handler sees them (bytes HTTP does not allow, headers
// over the limit, a broken chunked body): answered like Envoy's codec errors — 400, or 431 for
// headers too large (envoy source/common/http/http1/codec_impl.cc sendProtocolError), 408 for a request
// that never completes — with a body
// naming the problem, then the connection closes. The rest of the request is read and dropped first:
// closing a socket with unread bytes resets it, and the client may lose the answer.
// https://nodejs.org/api/http.html#event-clienterror
const refused = new WeakSet<Socket>();
function refuseMalformed(
  err: Error & { code?: string; reason?: string },
  socket: Socket,
  log: (line: string) => void,
): void {
  if (err.code === "ECONNRESET" || socket.destroyed || refused.has(socket)) return;
  refused.add(socket);
  const status =
    err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
  const why =
    status === 431
      ? "request headers too large"
      : status === 408
        ? "the request did not arrive in time"
        : (err.reason ?? err.message).toLowerCase();
  const body = `${STATUS_CODES[status]}: ${why}\n`;
  log(`gateway: refused a malformed request: ${status} ${err.code ?? ""} ${why}`);
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: text/plain\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.resume();
  socket.setTimeout(1000, () => socket.destroy());
  socket.once("end", () => socket.destroy());
}

export async function startGateway(
  config: GatewayConfig,
  options: GatewayOptions = {},
): Promise<RunningGateway> {
  const log = options.log ?? ((line: string) => process.stdout.write(line + "\n"));
  const clusters = new Map<string, ClusterSpec>();
  for (const [name, spec] of config.clusters) clusters.set(name, spec);
  for (const [name, target] of Object.entries(options.clusters ?? {})) {
    if (!clusters.has(name))
      throw new Error(`--cluster ${name}: the configuration has no cluster named ${name}`);
    clusters.set(name, { name, endpoints: [hostPort(target, `--cluster ${name}`)] });
  }
  // The gateway's router speaks plain HTTP only: a TLS cluster runs only once --cluster points it at a local
  // plain-HTTP address (which replaces its endpoints and transport), never by quietly dropping the TLS.
  for (const spec of clusters.values()) {
    if (spec.tls !== undefined)
      throw new Error(
        `cluster ${spec.name}: transport_socket TLS is not modelled by the local gateway (Envoy speaks TLS to it): ` +
          `point it at a local plain-HTTP address with --cluster ${spec.name}=host:port`,
      );
  }
  for (const name of Object.keys(options.listen ?? {})) {
    if (!config.listeners.some((l) => l.name === name))
      throw new Error(`--listen ${name}: no listener named ${name}`);
  }

  const servers: Server[] = [];
  const urls: Record<string, string> = {};
  const allPlugins = new Map<string, Plugin>();
  let requests = 0;
  try {
    for (const listener of config.listeners) {
      const plugins = await startPlugins(listener.filters, listener, clusters, options, log);
      for (const [name, plugin] of plugins) allPlugins.set(name, plugin);
      const server = createServer((req, res) => {
        const started = Date.now();
        const method = req.method ?? "GET";
        const target = requestTarget(req.url ?? "/", req.headers.host);
        const { path, authority } = target ?? { path: req.url ?? "/", authority: "" };
        const routes = virtualHostRoutes(listener, authority);
        const spec =
          routes === null ? null : matchRoute(routes, method, path, { ...req.headers, host: authority });
        const done = (status: number, bytes: number) =>
          log(
            `[${new Date(started).toISOString()}] "${method} ${loggedPath(path)} HTTP/${req.httpVersion}" ${status} ` +
              `route=${spec?.name || "-"} cluster=${spec?.cluster ?? "-"} ${bytes} ${Date.now() - started}ms`,
          );
        void (async () => {
          const body = await readBody(req);
          if (target === null || spec === null) {
            const status = target === null ? 400 : 404;
            const text =
              target === null ? "Bad Request: the request target is not a path\n" : "Not Found: no route\n";
            res.writeHead(status, {
              "content-type": "text/plain",
              "content-length": Buffer.byteLength(text),
            });
            res.end(text);
            done(status, text.length);
            return;
          }
          const chain = listener.filters
            .filter((f) => !f.disabled || spec.enables.includes(f.name))
            .map((f) => plugins.get(f.name)!);
          const headers: [string, string][] = [];
          for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
            const name = req.rawHeaders[i].toLowerCase();
            if (name !== "host" && !HOP_BY_HOP.has(name)) headers.push([name, req.rawHeaders[i + 1]]);
          }
          const request: HttpRequest = {
            method,
            path,
            authority,
            scheme: "http",
            headers,
            body,
            routeName: spec.name,
          };
          const router = (up: UpstreamRequest) => route(clusters.get(spec.cluster)!, spec, up);
          const worker = requests++;
          let result: { status: number; headers: [string, string][]; body: Buffer };
          if (chain.length === 0) {
            const pseudo: [string, string][] = [
              [":method", method],
              [":path", path],
              [":authority", request.authority ?? ""],
              [":scheme", "http"],
            ];
            const up = await router({ headers: [...pseudo, ...headers], body, filterState: new Map() });
            result = { status: up.status, headers: up.headers ?? [], body: Buffer.from(up.body ?? "") };
          } else {
            result = await runChain(chain, worker, request, router);
          }
          answer(res, result);
          done(result.status, result.body.length);
        })().catch((err: unknown) => {
          log(`gateway: ${method} ${loggedPath(path)}: ${(err as Error).message}`);
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
          res.end("gateway error\n");
          done(500, 0);
        });
      });
      server.on("clientError", (err: Error & { code?: string; reason?: string }, socket: Socket) =>
        refuseMalformed(err, socket, log),
      );
      const target = options.listen?.[listener.name];
      const { address, port } = target ? hostPort(target, `--listen ${listener.name}`) : listener;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, address, () => resolve());
      });
      servers.push(server);
      const bound = server.address() as AddressInfo;
      urls[listener.name] = `http://${address === "0.0.0.0" ? "127.0.0.1" : address}:${bound.port}`;
    }
  } catch (err) {
    for (const server of servers) server.close();
    throw err;
  }
  return {
    urls,
    plugins: allPlugins,
    stop: async () => {
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
    },
  };
}
