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
import { payloadTooLargeReply, type Direction } from "./direction.ts";
import { HeaderMap, fromLatin1, toLatin1 } from "./header-map.ts";
import {
  buildRequest,
  localReplyHeaders,
  toBody,
  toTrailerMap,
  type HttpRequest,
  type HttpResult,
  type Upstream,
  type UpstreamRequest,
} from "./http-message.ts";
import type { Vm } from "./vm.ts";

export class StreamStalledError extends Error {}
export class StreamResetError extends Error {}

/** Filter-manager state of one direction for this filter. */
interface DirectionState {
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

function newDirectionState(): DirectionState {
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
  private readonly dirs: Record<Direction, DirectionState> = {
    request: newDirectionState(),
    response: newDirectionState(),
  };
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
      headers: (this.dirs.request.sentHeaders ?? received).toPairs(),
      body: Buffer.concat(this.dirs.request.forwarded),
      filterState: new Map([...this.stream.filterState].map(([k, v]) => [fromLatin1(k), Buffer.from(v)])),
    };
    if (this.dirs.request.sentTrailers) r.trailers = this.dirs.request.sentTrailers.toPairs();
    return r;
  }

  private finish(): HttpResult {
    const headers = this.dirs.response.sentHeaders ?? new HeaderMap();
    const result: HttpResult = {
      status: Number(headers.get(":status") ?? "0"),
      headers: headers.toPairs().filter(([k]) => k !== ":status"),
      body: Buffer.concat(this.dirs.response.forwarded),
      streamId: this.stream.id,
    };
    if (this.dirs.response.sentTrailers) result.trailers = this.dirs.response.sentTrailers.toPairs();
    if (this.localReply) result.localReply = { details: this.localReply.details };
    if (this.upstreamCalled && this.dirs.request.sentHeaders) {
      result.upstreamRequest = this.upstreamRequest(this.dirs.request.sentHeaders);
    }
    return result;
  }

  // ------------------------------------------------------------------ shared helpers

  private dir(which: Direction): DirectionState {
    return this.dirs[which];
  }

  private buffered(which: Direction): Buffer | undefined {
    return this.stream[which].buffered;
  }

  private setBuffered(which: Direction, b: Buffer | undefined): void {
    this.stream[which].buffered = b;
  }

  private appendBuffered(which: Direction, data: Buffer): void {
    this.setBuffered(which, Buffer.concat([this.buffered(which) ?? Buffer.alloc(0), data]));
  }

  private callHeaders(which: Direction, headers: HeaderMap, eos: boolean): number {
    return this.vm.onHeaders(which, this.stream, headers, eos);
  }

  private callBody(which: Direction, data: Buffer, eos: boolean): { status: number; chunk: Buffer } {
    return this.vm.onBody(which, this.stream, data, eos);
  }

  private callTrailers(which: Direction, trailers: HeaderMap): number {
    return this.vm.onTrailers(which, this.stream, trailers);
  }

  /** The next filter (the router, or the codec downstream) gets the trailers: the direction ends. */
  private sendTrailers(which: Direction): void {
    const d = this.dir(which);
    if (!d.trailers || d.sentTrailers) return;
    d.sentTrailers = d.trailers.clone();
    d.eosSent = true;
    // Envoy keeps only the response trailers for on_log (access_log_response_trailers_).
    if (which === "response") this.stream.response.loggedTrailers = d.sentTrailers;
  }

  /**
   * Trailers the module added from the end_of_stream body callback (addDecodedTrailers /
   * addEncodedTrailers, the map 1/3 edits Context::getMap allows there): the data then goes on
   * without end_of_stream and the trailers follow it (FilterManager::decodeData).
   */
  private adoptAddedTrailers(which: Direction, eos: boolean): void {
    const d = this.dir(which);
    if (!eos || d.trailers) return;
    const added = this.stream[which].trailers;
    if (added) d.trailers = added;
  }

  private sendHeaders(which: Direction, eos: boolean): void {
    const d = this.dir(which);
    if (d.headersSent) return;
    d.headersSent = true;
    const source = this.stream[which].headers;
    d.sentHeaders = (source ?? new HeaderMap()).clone();
    if (eos) d.eosSent = true;
  }

  /** FilterManager::commonHandleAfterHeadersCallback. */
  private afterHeaders(which: Direction, status: number, eos: boolean): void {
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
  private afterData(which: Direction, status: number, chunk: Buffer, eos: boolean): void {
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
  private commonContinue(which: Direction): void {
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
    this.stream[which].bufferingBody = false;
  }

  /** Buffered body above per_connection_buffer_limit_bytes while not streaming. */
  private checkLimit(which: Direction): boolean {
    if ((this.buffered(which)?.length ?? 0) <= this.bufferLimit) return false;
    this.raiseLocalReply(payloadTooLargeReply(which));
    return true;
  }

  /** Delivers one data frame to this filter (or to the filter manager's buffer while stopped-all). */
  private deliverData(which: Direction, data: Buffer, eos: boolean): boolean {
    const d = this.dir(which);
    if (eos) d.observedEos = true;
    if (d.headers === "stopAll") {
      this.appendBuffered(which, data);
      return d.stopAllBuffers && this.checkLimit(which);
    }
    if (
      this.stream[which].bufferingBody &&
      (this.buffered(which)?.length ?? 0) + data.length > this.bufferLimit
    ) {
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
  private deliverTrailers(which: Direction, trailers: HeaderMap): void {
    const d = this.dir(which);
    d.observedEos = true;
    d.trailers = trailers;
    // A filter that stopped all iteration gets its trailers callback only once it continues.
    if (d.headers === "stopAll") return;
    this.runTrailersCallback(which, trailers);
  }

  private runTrailersCallback(which: Direction, trailers: HeaderMap): void {
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
  private resume(which: Direction): boolean {
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
      if (this.dirs.response.headersSent) {
        throw new StreamResetError(
          `local reply (${reply.details}) after the response headers were sent: Envoy resets the stream`,
        );
      }
      // sendDirectLocalReply: the reply replaces the response without passing the encoder filters.
      this.dirs.response = newDirectionState();
      this.dirs.response.sentHeaders = localReplyHeaders(reply);
      this.dirs.response.headersSent = true;
      this.dirs.response.eosSent = true;
      this.dirs.response.forwarded = [reply.body];
      this.localReplyEncoded = true;
    }
  }

  /**
   * Applies what the module asked for in the callbacks so far (Envoy runs these as after-VM-call
   * actions). Returns true when the current direction has ended (local reply).
   */
  private applyActions(which: Direction): boolean {
    const s = this.stream;
    if (s.resetRequested) {
      throw new StreamResetError(
        `stream reset by the filter (proxy_close_stream), details ${s.responseCodeDetails}`,
      );
    }
    if (s.localReply && !this.localReply) this.raiseLocalReply(s.localReply);
    if (this.localReply) return true;
    if (s[which].continueRequested) {
      s[which].continueRequested = false;
      if (this.resume(which)) return true;
    }
    return this.localReply !== undefined;
  }

  private async waitUntilSent(which: Direction): Promise<void> {
    const d = this.dir(which);
    for (;;) {
      if (this.applyActions(which)) return;
      if (d.headersSent && d.eosSent) return;
      const next = this.vm.httpCalls.nextSettled();
      if (next) {
        this.vm.httpCalls.dispatch(await next);
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

  private async runDirection(
    which: Direction,
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
    await this.runDirection("request", headers, chunks, trailers);
  }

  private async encode(headers: HeaderMap, chunks: Buffer[], trailers: HeaderMap | undefined): Promise<void> {
    this.phase = "encode";
    this.dirs.response = newDirectionState();
    await this.runDirection("response", headers, chunks, trailers);
  }

  /** sendLocalReplyViaFilterChain: the reply passes this filter's encode callbacks. */
  private async encodeLocalReply(): Promise<void> {
    const reply = this.localReply;
    if (!reply || this.localReplyEncoded) return;
    this.localReplyEncoded = true;
    this.phase = "encode";
    this.dirs.response = newDirectionState();
    const headers = localReplyHeaders(reply);
    const chunks = reply.body.length > 0 ? [reply.body] : [];
    const d = this.dirs.response;
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
    const d = this.dirs.response;
    for (;;) {
      const s = this.stream;
      if (s.resetRequested) throw new StreamResetError("stream reset by the filter (proxy_close_stream)");
      if (s.response.continueRequested) {
        s.response.continueRequested = false;
        this.resume("response");
      }
      if (d.headersSent && d.eosSent) return;
      const next = this.vm.httpCalls.nextSettled();
      if (next) {
        this.vm.httpCalls.dispatch(await next);
        continue;
      }
      throw new StreamStalledError(
        "stream stalled: the local reply's response is paused and nothing can resume it",
      );
    }
  }
}
