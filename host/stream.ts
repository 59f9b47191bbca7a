// Envoy's HTTP connection manager path for one request through this filter and the router, as
// source/common/http/filter_manager.cc drives it:
// - decode: headers, then body chunks. A filter that returned StopIteration on headers keeps getting
//   body callbacks while the headers wait; StopAllIteration* stops the body callbacks too and the
//   filter manager buffers the body until the filter continues, then hands the whole buffered body
//   to this filter's on_request_body (iterate_from_current_filter_). StopIterationAndBuffer on a body
//   callback buffers it (above the buffer limit: 413 local reply, details request_payload_too_large);
//   a later Continue sends the held headers and everything buffered (commonContinue).
// - trailers: with trailers the last data frame has no end_of_stream; the trailers callback runs
//   unless the filter stopped all iteration (then they wait and reach this filter's callback when
//   it continues). Its Continue, after an earlier stop, sends the held headers, the buffered body and
//   the trailers (commonHandleAfterTrailersCallback → commonContinue); its StopIteration holds
//   everything until proxy_continue_stream.
// - sendLocalReply before the response started runs the reply through the encoder filters — this
//   filter's on_response_* included — except for the 503 wasm_fail_stream reply of a failed VM
//   (Context::encodeHeaders skips the VM once failure_local_reply_sent_). A local reply while the
//   upstream response is being encoded replaces it directly (sendDirectLocalReply); after the response
//   headers were sent the stream is reset.
// - a paused stream waits for proxy_continue_stream, a local reply or an http callout's answer;
//   with none of them pending it would wait forever in Envoy, so here the request rejects with a
//   "stream stalled" error.
import { randomUUID } from "node:crypto";
import { FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus } from "./abi.ts";
import type { LocalReply, StreamContext } from "./context.ts";
import { HeaderMap, toLatin1 } from "./header-map.ts";
import type { Vm } from "./vm.ts";

export interface HttpRequest {
  method?: string;
  path: string;
  authority?: string;
  scheme?: string;
  headers?: [string, string][];
  body?: Uint8Array | string;
  /** The body as separate data frames (no content-length is added). */
  chunks?: Uint8Array[];
  /** Request trailers: the last data frame then has no end_of_stream and on_request_trailers follows. */
  trailers?: [string, string][];
  routeName?: string;
  /** Property overrides: exact NUL-separated paths → raw values. */
  properties?: Record<string, string | Uint8Array>;
  /** Filter state set by earlier filters: keys as given to proxy_set_property (stored as "wasm.<key>"). */
  filterState?: Record<string, string | Uint8Array>;
}

export interface UpstreamAnswer {
  status: number;
  headers?: [string, string][];
  body?: Uint8Array | string;
  /** Response trailers: the body then has no end_of_stream and on_response_trailers follows. */
  trailers?: [string, string][];
}

/** What reached the upstream; `trailers` only when the request went on with trailers. */
export interface UpstreamRequest {
  headers: [string, string][];
  body: Buffer;
  trailers?: [string, string][];
}

export type Upstream = (r: UpstreamRequest) => Promise<UpstreamAnswer> | UpstreamAnswer;

export interface HttpResult {
  status: number;
  /** Response headers as the client gets them, without ":status". */
  headers: [string, string][];
  body: Buffer;
  /** Response trailers as the client gets them (absent when the response had none). */
  trailers?: [string, string][];
  localReply?: { details: string };
  /** What reached the upstream (absent when the request never went upstream). */
  upstreamRequest?: UpstreamRequest;
  streamId: number;
}

/**
 * The HTTP/1 codec refuses request headers above max_request_headers_kb (default 60) or
 * max_headers_count (default 100) with 431 before any filter exists
 * (envoy source/common/http/http1/codec_impl.cc).
 */
export function codecRejects(headers: HeaderMap, maxKb: number, maxCount: number): boolean {
  return headers.byteSize() > maxKb * 1024 || headers.size > maxCount;
}

export class StreamStalledError extends Error {}
export class StreamResetError extends Error {}

type Which = "request" | "response";

/** The response Envoy's sendLocalReply encodes (Utility::prepareLocalReply, then modify_headers). */
export function localReplyHeaders(reply: LocalReply): HeaderMap {
  const headers = new HeaderMap();
  headers.add(":status", String(reply.statusCode));
  // Utility::prepareLocalReply (source/common/http/utility.cc): modify_headers (the module's extra
  // headers) run first; then, with a body, content-length is set and content-type defaults to
  // text/plain only when they did not set one; without a body both are removed.
  for (const [k, v] of reply.headers) headers.add(k, v);
  if (reply.body.length > 0) {
    headers.replace("content-length", String(reply.body.length));
    if (headers.get("content-type") === undefined) headers.add("content-type", "text/plain");
  } else {
    headers.remove("content-length");
    headers.remove("content-type");
  }
  return headers;
}

/** Filter-manager state of one direction for this filter. */
interface Direction {
  /** Iteration state after the headers callback. */
  headers: "continue" | "stopSingle" | "stopAll";
  stopAllBuffers: boolean; // StopAllIterationAndBuffer (limit → 413/500) vs …AndWatermark (flow control)
  dataStopped: boolean; // a body or trailers callback stopped iteration (StopSingleIteration)
  headersSent: boolean;
  eosSent: boolean;
  /** The filter manager's complete(): the end_of_stream data frame or the trailers arrived. */
  observedEos: boolean;
  /** Trailers the filter manager holds for this direction: arrived, or added by the last body callback. */
  trailers: HeaderMap | undefined;
  /** This filter's trailers callback has run. */
  trailersCalled: boolean;
  sentHeaders: HeaderMap | undefined;
  forwarded: Buffer[];
  sentTrailers: HeaderMap | undefined;
}

function newDirection(): Direction {
  return {
    headers: "continue",
    stopAllBuffers: false,
    dataStopped: false,
    headersSent: false,
    eosSent: false,
    observedEos: false,
    trailers: undefined,
    trailersCalled: false,
    sentHeaders: undefined,
    forwarded: [],
    sentTrailers: undefined,
  };
}

export class HttpDriver {
  private readonly req = newDirection();
  private resp = newDirection();
  private phase: "decode" | "encode" = "decode";
  private localReply: LocalReply | undefined;
  private localReplyEncoded = false;
  private upstreamCalled = false;

  constructor(
    private readonly vm: Vm,
    private readonly stream: StreamContext,
    private readonly bufferLimit: number,
  ) {}

  async run(request: HttpRequest, upstream: Upstream): Promise<HttpResult> {
    try {
      const { headers, chunks, trailers } = buildRequest(request, randomUUID());
      await this.decode(headers, chunks, trailers);
      if (this.localReply) {
        await this.encodeLocalReply();
        return this.finish();
      }
      this.upstreamCalled = true;
      const answer = await upstream(this.upstreamRequest(headers));
      const respHeaders = new HeaderMap();
      respHeaders.add(":status", String(answer.status));
      for (const [k, v] of answer.headers ?? []) respHeaders.add(toLatin1(k), toLatin1(v));
      const body = toBody(answer.body);
      const respTrailers = answer.trailers === undefined ? undefined : toTrailerMap(answer.trailers);
      // A response with trailers is framed by chunked encoding or HTTP/2 frames: no content-length.
      if (!respHeaders.has("content-length") && !respHeaders.has("transfer-encoding") && !respTrailers) {
        respHeaders.add("content-length", String(body.length));
      }
      this.stream.responseCode = answer.status;
      this.stream.responseCodeDetails = "via_upstream";
      await this.encode(respHeaders, body.length > 0 ? [body] : [], respTrailers);
      if (this.localReply && !this.localReplyEncoded) await this.encodeLocalReply();
      return this.finish();
    } finally {
      this.vm.completeStream(this.stream);
    }
  }

  private upstreamRequest(received: HeaderMap): UpstreamRequest {
    const r: UpstreamRequest = {
      headers: (this.req.sentHeaders ?? received).toPairs(),
      body: Buffer.concat(this.req.forwarded),
    };
    if (this.req.sentTrailers) r.trailers = this.req.sentTrailers.toPairs();
    return r;
  }

  private finish(): HttpResult {
    const headers = this.resp.sentHeaders ?? new HeaderMap();
    const result: HttpResult = {
      status: Number(headers.get(":status") ?? "0"),
      headers: headers.toPairs().filter(([k]) => k !== ":status"),
      body: Buffer.concat(this.resp.forwarded),
      streamId: this.stream.id,
    };
    if (this.resp.sentTrailers) result.trailers = this.resp.sentTrailers.toPairs();
    if (this.localReply) result.localReply = { details: this.localReply.details };
    if (this.upstreamCalled && this.req.sentHeaders) {
      result.upstreamRequest = this.upstreamRequest(this.req.sentHeaders);
    }
    return result;
  }

  // ------------------------------------------------------------------ shared helpers

  private dir(which: Which): Direction {
    return which === "request" ? this.req : this.resp;
  }

  private buffered(which: Which): Buffer | undefined {
    return which === "request" ? this.stream.requestBuffered : this.stream.responseBuffered;
  }

  private setBuffered(which: Which, b: Buffer | undefined): void {
    if (which === "request") this.stream.requestBuffered = b;
    else this.stream.responseBuffered = b;
  }

  private appendBuffered(which: Which, data: Buffer): void {
    this.setBuffered(which, Buffer.concat([this.buffered(which) ?? Buffer.alloc(0), data]));
  }

  private callHeaders(which: Which, headers: HeaderMap, eos: boolean): number {
    return which === "request"
      ? this.vm.onRequestHeaders(this.stream, headers, eos)
      : this.vm.onResponseHeaders(this.stream, headers, eos);
  }

  private callBody(which: Which, data: Buffer, eos: boolean): { status: number; chunk: Buffer } {
    return which === "request"
      ? this.vm.onRequestBody(this.stream, data, eos)
      : this.vm.onResponseBody(this.stream, data, eos);
  }

  private callTrailers(which: Which, trailers: HeaderMap): number {
    return which === "request"
      ? this.vm.onRequestTrailers(this.stream, trailers)
      : this.vm.onResponseTrailers(this.stream, trailers);
  }

  /** The next filter (the router, or the codec downstream) gets the trailers: the direction ends. */
  private sendTrailers(which: Which): void {
    const d = this.dir(which);
    if (!d.trailers || d.sentTrailers) return;
    d.sentTrailers = d.trailers.clone();
    d.eosSent = true;
    if (which === "response") this.stream.loggedResponseTrailers = d.sentTrailers;
  }

  /**
   * Trailers the module added from the end_of_stream body callback (addDecodedTrailers /
   * addEncodedTrailers, the map 1/3 edits Context::getMap allows there): the data then goes on
   * without end_of_stream and the trailers follow it (FilterManager::decodeData).
   */
  private adoptAddedTrailers(which: Which, eos: boolean): void {
    const d = this.dir(which);
    if (!eos || d.trailers) return;
    const added = which === "request" ? this.stream.requestTrailers : this.stream.responseTrailers;
    if (added) d.trailers = added;
  }

  private sendHeaders(which: Which, eos: boolean): void {
    const d = this.dir(which);
    if (d.headersSent) return;
    d.headersSent = true;
    const source = which === "request" ? this.stream.requestHeaders : this.stream.responseHeaders;
    d.sentHeaders = (source ?? new HeaderMap()).clone();
    if (eos) d.eosSent = true;
  }

  /** FilterManager::commonHandleAfterHeadersCallback. */
  private afterHeaders(which: Which, status: number, eos: boolean): void {
    const d = this.dir(which);
    if (status === FilterHeadersStatus.Continue) {
      this.sendHeaders(which, eos);
    } else if (status === FilterHeadersStatus.StopIteration) {
      d.headers = "stopSingle";
    } else {
      d.headers = "stopAll";
      d.stopAllBuffers = status === FilterHeadersStatus.StopAllIterationAndBuffer;
    }
  }

  /** FilterManager::commonHandleAfterDataCallback; `chunk` is what the module left of the new data. */
  private afterData(which: Which, status: number, chunk: Buffer, eos: boolean): void {
    const d = this.dir(which);
    if (status === FilterDataStatus.Continue) {
      if (d.headers !== "continue" || d.dataStopped) {
        this.appendBuffered(which, chunk);
        this.commonContinue(which);
      } else {
        d.forwarded.push(chunk);
        if (eos && d.trailers) this.sendTrailers(which);
        else if (eos) d.eosSent = true;
      }
    } else if (status === FilterDataStatus.StopIterationNoBuffer) {
      d.dataStopped = true; // the data is not kept
    } else {
      d.dataStopped = true;
      this.appendBuffered(which, chunk);
    }
  }

  /**
   * ActiveStreamFilterBase::commonContinue: held headers, then everything buffered, then the
   * trailers, move on (end_of_stream rides on the last of them).
   */
  private commonContinue(which: Which): void {
    const d = this.dir(which);
    const buffered = this.buffered(which);
    const headersWereSent = d.headersSent;
    const hasTrailers = d.trailers !== undefined;
    this.sendHeaders(which, d.observedEos && buffered === undefined && !hasTrailers);
    if (buffered !== undefined) {
      d.forwarded.push(buffered);
      this.setBuffered(which, undefined);
      if (d.observedEos && !hasTrailers) d.eosSent = true;
    } else if (headersWereSent && d.observedEos && !hasTrailers) {
      // The end of stream was seen by a callback that kept no data (StopIterationNoBuffer): the
      // filter manager ends the stream with an empty data frame on continue.
      d.eosSent = true;
    }
    if (hasTrailers) this.sendTrailers(which);
    d.headers = "continue";
    d.dataStopped = false;
    if (which === "request") this.stream.bufferingRequestBody = false;
    else this.stream.bufferingResponseBody = false;
  }

  /** Buffered body above per_connection_buffer_limit_bytes while not streaming. */
  private checkLimit(which: Which): boolean {
    if ((this.buffered(which)?.length ?? 0) <= this.bufferLimit) return false;
    // ActiveStreamDecoderFilter::requestDataTooLarge / ActiveStreamEncoderFilter::responseDataTooLarge.
    this.raiseLocalReply(
      which === "request"
        ? {
            statusCode: 413,
            details: "request_payload_too_large",
            body: Buffer.from("Payload Too Large"),
            headers: [],
            grpcStatus: -1,
          }
        : {
            statusCode: 500,
            details: "response_payload_too_large",
            body: Buffer.from("Internal Server Error"),
            headers: [],
            grpcStatus: -1,
          },
    );
    return true;
  }

  /** Delivers one data frame to this filter (or to the filter manager's buffer while stopped-all). */
  private deliverData(which: Which, data: Buffer, eos: boolean): boolean {
    const d = this.dir(which);
    if (eos) d.observedEos = true;
    if (d.headers === "stopAll") {
      this.appendBuffered(which, data);
      return d.stopAllBuffers && this.checkLimit(which);
    }
    const buffering =
      which === "request" ? this.stream.bufferingRequestBody : this.stream.bufferingResponseBody;
    if (buffering && (this.buffered(which)?.length ?? 0) + data.length > this.bufferLimit) {
      // Context::decodeData adds the data to the filter manager's buffer first; crossing the limit
      // sends the 413 right there and the VM is not called for this data.
      this.appendBuffered(which, data);
      return this.checkLimit(which);
    }
    const r = this.callBody(which, data, eos);
    this.adoptAddedTrailers(which, eos);
    this.afterData(which, r.status, r.chunk, eos);
    return r.status === FilterDataStatus.StopIterationAndBuffer && this.checkLimit(which);
  }

  /** FilterManager::decodeTrailers / encodeTrailers for this filter. */
  private deliverTrailers(which: Which, trailers: HeaderMap): void {
    const d = this.dir(which);
    d.observedEos = true;
    d.trailers = trailers;
    // A filter that stopped all iteration gets its trailers callback only once it continues.
    if (d.headers === "stopAll") return;
    this.runTrailersCallback(which, trailers);
  }

  private runTrailersCallback(which: Which, trailers: HeaderMap): void {
    const d = this.dir(which);
    d.trailersCalled = true;
    const status = this.callTrailers(which, trailers);
    // ActiveStreamFilterBase::commonHandleAfterTrailersCallback.
    if (status === FilterTrailersStatus.Continue) {
      if (d.headers !== "continue" || d.dataStopped) this.commonContinue(which);
      else this.sendTrailers(which);
    } else if (d.headers === "continue") {
      d.dataStopped = true; // iteration_state_ = StopSingleIteration: everything waits for a continue
    }
  }

  /** Resumes a direction after proxy_continue_stream. Returns true if the direction ended. */
  private resume(which: Which): boolean {
    const d = this.dir(which);
    if (d.headers === "stopAll") {
      // Headers go on; the body the filter manager held meanwhile is handed to this filter's body
      // callback in one piece, starting from the current filter (iterate_from_current_filter_).
      // Trailers that arrived meanwhile follow the body into this filter's trailers callback.
      const buffered = this.buffered(which);
      const trailers = d.trailers;
      this.setBuffered(which, undefined);
      this.sendHeaders(which, d.observedEos && buffered === undefined && !trailers);
      d.headers = "continue";
      if (buffered !== undefined) {
        const eos = d.observedEos && !trailers;
        const r = this.callBody(which, buffered, eos);
        this.adoptAddedTrailers(which, eos);
        this.afterData(which, r.status, r.chunk, eos);
        if (r.status === FilterDataStatus.StopIterationAndBuffer && this.checkLimit(which)) return true;
      }
      // FilterManager::decodeTrailers stops once a local reply completed the stream.
      if (trailers && !d.trailersCalled && !this.stream.localReply && !this.stream.resetRequested) {
        this.runTrailersCallback(which, trailers);
      }
      return false;
    }
    if (d.headers === "stopSingle" || d.dataStopped) this.commonContinue(which);
    return false;
  }

  private raiseLocalReply(reply: LocalReply): void {
    if (this.localReply) return;
    this.localReply = reply;
    this.stream.localReply ??= reply;
    this.stream.responseCode = reply.statusCode;
    this.stream.responseCodeDetails = reply.details;
    if (this.phase === "encode") {
      if (this.resp.headersSent) {
        throw new StreamResetError(
          `local reply (${reply.details}) after the response headers were sent: Envoy resets the stream`,
        );
      }
      // sendDirectLocalReply: the reply replaces the response without passing the encoder filters.
      this.resp = newDirection();
      this.resp.sentHeaders = localReplyHeaders(reply);
      this.resp.headersSent = true;
      this.resp.eosSent = true;
      this.resp.forwarded = [reply.body];
      this.localReplyEncoded = true;
    }
  }

  /**
   * Applies what the module asked for in the callbacks so far (Envoy runs these as after-VM-call
   * actions). Returns true when the current direction has ended (local reply).
   */
  private applyActions(which: Which): boolean {
    const s = this.stream;
    if (s.resetRequested) {
      throw new StreamResetError(
        `stream reset by the filter (proxy_close_stream), details ${s.responseCodeDetails}`,
      );
    }
    if (s.localReply && !this.localReply) this.raiseLocalReply(s.localReply);
    if (this.localReply) return true;
    if (which === "request" && s.continueRequestRequested) {
      s.continueRequestRequested = false;
      if (this.resume("request")) return true;
    }
    if (which === "response" && s.continueResponseRequested) {
      s.continueResponseRequested = false;
      if (this.resume("response")) return true;
    }
    return this.localReply !== undefined;
  }

  private async waitUntilSent(which: Which): Promise<void> {
    const d = this.dir(which);
    for (;;) {
      if (this.applyActions(which)) return;
      if (d.headersSent && d.eosSent) return;
      const next = this.vm.nextSettledCallout();
      if (next) {
        this.vm.dispatchCallout(await next);
        continue;
      }
      const why =
        this.vm.failed && !this.vm.core.failOpen
          ? `the VM failed (${this.vm.failMessage ?? "trap"}) while it was paused`
          : "nothing can resume it: no proxy_continue_stream, local reply or pending http callout";
      const state = d.headers !== "continue" ? `headers ${d.headers}` : "body or trailers stopped";
      throw new StreamStalledError(`stream stalled: the ${which} is paused (${state}) and ${why}`);
    }
  }

  private async run_direction(
    which: Which,
    headers: HeaderMap,
    chunks: Buffer[],
    trailers: HeaderMap | undefined,
  ): Promise<void> {
    const d = this.dir(which);
    const eosOnHeaders = chunks.length === 0 && !trailers;
    if (eosOnHeaders) d.observedEos = true;
    this.afterHeaders(which, this.callHeaders(which, headers, eosOnHeaders), eosOnHeaders);
    if (this.applyActions(which)) return;
    for (let i = 0; i < chunks.length; i++) {
      if (this.deliverData(which, chunks[i], i === chunks.length - 1 && !trailers)) return;
      if (this.applyActions(which)) return;
    }
    if (trailers) {
      this.deliverTrailers(which, trailers);
      if (this.applyActions(which)) return;
    }
    await this.waitUntilSent(which);
  }

  private async decode(headers: HeaderMap, chunks: Buffer[], trailers: HeaderMap | undefined): Promise<void> {
    this.phase = "decode";
    await this.run_direction("request", headers, chunks, trailers);
  }

  private async encode(headers: HeaderMap, chunks: Buffer[], trailers: HeaderMap | undefined): Promise<void> {
    this.phase = "encode";
    this.resp = newDirection();
    await this.run_direction("response", headers, chunks, trailers);
  }

  /** sendLocalReplyViaFilterChain: the reply passes this filter's encode callbacks. */
  private async encodeLocalReply(): Promise<void> {
    const reply = this.localReply;
    if (!reply || this.localReplyEncoded) return;
    this.localReplyEncoded = true;
    this.phase = "encode";
    this.resp = newDirection();
    const headers = localReplyHeaders(reply);
    const chunks = reply.body.length > 0 ? [reply.body] : [];
    const d = this.resp;
    const eosOnHeaders = chunks.length === 0;
    if (eosOnHeaders) d.observedEos = true;
    this.afterHeaders("response", this.callHeaders("response", headers, eosOnHeaders), eosOnHeaders);
    // A second local reply from the encode callbacks of a local reply is ignored here.
    for (const chunk of chunks) {
      if (this.stream.resetRequested) break;
      this.deliverData("response", chunk, true);
    }
    await this.waitLocalReplyEncoded();
  }

  private async waitLocalReplyEncoded(): Promise<void> {
    const d = this.resp;
    for (;;) {
      const s = this.stream;
      if (s.resetRequested) throw new StreamResetError("stream reset by the filter (proxy_close_stream)");
      if (s.continueResponseRequested) {
        s.continueResponseRequested = false;
        this.resume("response");
      }
      if (d.headersSent && d.eosSent) return;
      const next = this.vm.nextSettledCallout();
      if (next) {
        this.vm.dispatchCallout(await next);
        continue;
      }
      throw new StreamStalledError(
        "stream stalled: the local reply's response is paused and nothing can resume it",
      );
    }
  }
}

/** Trailers as the codec hands them to the filter chain (keys lower-cased). */
function toTrailerMap(pairs: [string, string][]): HeaderMap {
  const map = new HeaderMap();
  for (const [k, v] of pairs) map.add(toLatin1(k), toLatin1(v));
  return map;
}

function toBody(body: Uint8Array | string | undefined): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
}

/** The request as Envoy's connection manager hands it to the first filter. */
export function buildRequest(
  request: HttpRequest,
  requestId: string,
): { headers: HeaderMap; chunks: Buffer[]; trailers: HeaderMap | undefined } {
  // Each pair is one HTTP/1.1 header line: the codec adds it with addViaMove, so a repeated
  // inline header is merged into one entry ("a,b") and any other repeats (see header-map.ts).
  const headers = new HeaderMap("request");
  headers.add(":authority", toLatin1(request.authority ?? "example.com"));
  headers.add(":path", toLatin1(request.path));
  headers.add(":method", toLatin1(request.method ?? "GET"));
  headers.add(":scheme", toLatin1(request.scheme ?? "http"));
  for (const [k, v] of request.headers ?? []) headers.add(toLatin1(k), toLatin1(v));
  let chunks: Buffer[];
  if (request.chunks !== undefined) {
    chunks = request.chunks.filter((c) => c.length > 0).map((c) => Buffer.from(c));
  } else {
    const body = toBody(request.body);
    chunks = body.length > 0 ? [body] : [];
    if (body.length > 0 && !headers.has("content-length")) headers.add("content-length", String(body.length));
  }
  // ConnectionManagerUtility::mutateRequestHeaders runs before the filters.
  if (!headers.has("x-forwarded-proto")) headers.add("x-forwarded-proto", toLatin1(request.scheme ?? "http"));
  if (!headers.has("x-request-id")) headers.add("x-request-id", requestId);
  const trailers = request.trailers === undefined ? undefined : toTrailerMap(request.trailers);
  return { headers, chunks, trailers };
}
