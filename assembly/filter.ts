// The root context (configuration, callout answers) and the per-request context (running the
// operations in order, pausing the request while a `cluster` operation's callout is out).
import {
  Context,
  FilterDataStatusValues,
  FilterHeadersStatusValues,
  FilterTrailersStatusValues,
  RootContext,
} from "@solo-io/proxy-runtime";
import { KvmService, Operation, PluginConfig, Policy } from "./model";
import { parseConfig } from "./config";
import { OpError } from "./errors";
import { needsBody, OperationOutcome, runLocalOperation } from "./operations";
import { finishClusterOperation, PendingOperation, startClusterOperation } from "./cluster_operations";
import { CalloutAnswer, readAnswer } from "./cluster_client";
import { Callouts } from "./callouts";
import { countResult, operationName, recordCalloutLatency, RESULT_ERROR } from "./metrics";
import { RequestState } from "./request";
import { jsonQuote } from "./json";
import { BufferType, LogLevel, WasmResult } from "./hostcalls/abi";
import {
  continueRequest,
  getBufferBytes,
  getEnvironmentVariable,
  getProperty,
  log,
  nowMs,
  sendLocalResponse,
  setEffectiveContext,
} from "./hostcalls/calls";
import { decodeUtf8 } from "./utf8";
import { streamPointer } from "./streams";

export class KvmRootContext extends RootContext {
  config: PluginConfig | null = null;
  serviceToken: string = "";
  // Callouts out and the requests waiting on each, by stream context id. Ids, not the contexts:
  // the table must not keep a context alive (stream_exports.ts), and under AssemblyScript 0.17 a Map
  // holding KvmHttpContext values leaks a block per request even while empty (the rtrace test
  // sees it). A stream leaves the table in its onDelete, so an answer skips a finished stream.
  callouts: Callouts = new Callouts();

  // Replaces the SDK 0.1.8 onConfigure, which passes the size where the size pointer belongs
  // (docs/envoy-behaviour.md §10). A rejected configuration makes Envoy refuse the filter: one
  // critical line says exactly what is wrong and where.
  onConfigure(configurationSize: u32): bool {
    let raw = getBufferBytes(BufferType.PluginConfiguration, 0, configurationSize);
    if (raw === null) raw = new ArrayBuffer(0);
    const parsed = parseConfig(Uint8Array.wrap(raw));
    const config = parsed.config;
    if (config === null) {
      log(LogLevel.Critical, "invalid configuration: " + parsed.error);
      return false;
    }
    const token = resolveToken(config.kvmService);
    if (token === null) return false;
    this.serviceToken = token;
    this.config = config;
    return true;
  }

  createContext(contextId: u32): Context {
    return new KvmHttpContext(contextId, this);
  }

  // proxy_on_http_call_response comes to the root context (docs/envoy-behaviour.md §4). The
  // answer is read once, while the root context is current (it is the one holding the answer),
  // then each waiting request becomes the effective context before anything touches it.
  onHttpCallResponse(token: u32, headers: u32, bodySize: u32, _trailers: u32): void {
    const waiting = this.callouts.answered(token);
    if (waiting === null || waiting.length == 0) return;
    const answer = readAnswer(headers, bodySize);
    for (let i = 0; i < waiting.length; i++) {
      const contextId = waiting[i];
      const stream = streamPointer(contextId);
      if (stream == 0 || setEffectiveContext(contextId) != WasmResult.Ok) continue;
      changetype<KvmHttpContext>(stream).onCalloutAnswer(answer);
    }
  }
}

// The token from kvm_service.token, or from the VM's environment variable kvm_service.token_env
// (default KVM_SERVICE_TOKEN; Envoy: vm_config.environment_variables, which keeps the secret out
// of Envoy's config dump). A variable named in the configuration that is not set refuses it; the
// default one may be unset (no Authorization header: a service in insecure local mode).
function resolveToken(service: KvmService | null): string | null {
  if (service === null) return "";
  if (service.token.length > 0) return service.token;
  const value = getEnvironmentVariable(service.tokenEnv);
  if (value !== null) return value;
  if (service.tokenEnvGiven) {
    log(
      LogLevel.Critical,
      "invalid configuration: kvm_service.token_env: environment variable " +
        service.tokenEnv +
        " is not set (vm_config.environment_variables)",
    );
    return null;
  }
  return "";
}

function routeName(): string | null {
  const raw = getProperty("xds\0route_name");
  if (raw === null) return null;
  return decodeUtf8(Uint8Array.wrap(raw));
}

// `operations` first, then the list of the request's route, in order.
function operationsFor(config: PluginConfig): Operation[] {
  if (config.routes.length == 0) return config.operations;
  const name = routeName();
  if (name === null) return config.operations;
  for (let i = 0; i < config.routes.length; i++) {
    if (config.routes[i].routeName == name) return config.operations.concat(config.routes[i].operations);
  }
  return config.operations;
}

// How a run of the operations ended.
enum Run {
  Done = 0, // every operation ran: the request may go on
  Paused = 1, // a callout is out: the answer resumes the run
  Rejected = 2, // an operation failed and a local reply was sent
}

export class KvmHttpContext extends Context {
  private kvmRoot: KvmRootContext;
  private operations: Operation[] = [];
  private state: RequestState = new RequestState();
  private waitingForBody: bool = false;
  private bodySize: u32 = 0;
  // The operations run from the body callback (they read or write the body).
  private bodyPhase: bool = false;
  // Index of the operation whose callout is out, and what it needs when the answer comes.
  private next: i32 = 0;
  private pending: PendingOperation | null = null;

  constructor(contextId: u32, root: KvmRootContext) {
    super(contextId, root);
    this.kvmRoot = root;
  }

  onRequestHeaders(_headers: u32, endOfStream: bool): FilterHeadersStatusValues {
    const config = this.kvmRoot.config;
    if (config === null) return FilterHeadersStatusValues.Continue;
    this.operations = operationsFor(config);
    if (this.operations.length == 0) return FilterHeadersStatusValues.Continue;
    if (!endOfStream && this.anyNeedsBody()) {
      // Hold the headers until the whole body is here. Needs allow_on_headers_stop_iteration:
      // without it Envoy turns this into StopAllIterationAndWatermark and no body callback comes
      // (docs/envoy-behaviour.md §5).
      this.waitingForBody = true;
      return FilterHeadersStatusValues.StopIteration;
    }
    if (this.runFrom(0) == Run.Done) return FilterHeadersStatusValues.Continue;
    return FilterHeadersStatusValues.StopIteration;
  }

  onRequestBody(bodySize: usize, endOfStream: bool): FilterDataStatusValues {
    if (this.pending !== null) {
      // The headers wait for a callout: a Continue here would send them on. Let the body wait
      // with them (flow control, not the 413 buffer limit); the answer's continue sends it all.
      return FilterDataStatusValues.StopIterationAndWatermark;
    }
    if (!this.waitingForBody) return FilterDataStatusValues.Continue;
    this.bodySize = bodySize as u32;
    if (!endOfStream) return FilterDataStatusValues.StopIterationAndBuffer;
    const run = this.completeBody();
    if (run == Run.Done) return FilterDataStatusValues.Continue;
    // Paused: keep the body buffered; the callout's answer rewrites it if needed and continues.
    if (run == Run.Paused) return FilterDataStatusValues.StopIterationAndBuffer;
    return FilterDataStatusValues.StopIterationNoBuffer;
  }

  // With trailers the last body callback has no end_of_stream: the body is complete here.
  onRequestTrailers(_trailers: u32): FilterTrailersStatusValues {
    if (this.pending !== null) return FilterTrailersStatusValues.StopIteration;
    if (!this.waitingForBody) return FilterTrailersStatusValues.Continue;
    if (this.completeBody() == Run.Done) return FilterTrailersStatusValues.Continue;
    return FilterTrailersStatusValues.StopIteration;
  }

  onResponseHeaders(_headers: u32, _endOfStream: bool): FilterHeadersStatusValues {
    this.state.applyResponseHeaders();
    return FilterHeadersStatusValues.Continue;
  }

  // The SDK's defaults for these build and log a debug string on every request; nothing to do here.
  onLog(): void {}

  onDone(): bool {
    return true;
  }

  onDelete(): void {
    // A callout still out (the client went away): its record must not keep this context alive,
    // and its answer must find nothing (docs/envoy-behaviour.md §4: the callback still comes).
    const pending = this.pending;
    if (pending !== null) {
      this.kvmRoot.callouts.leave(pending.token, this.context_id);
      this.pending = null;
    }
    this.state.releaseBody();
  }

  // In the root context's proxy_on_http_call_response, with this stream as effective context.
  onCalloutAnswer(answer: CalloutAnswer): void {
    const pending = this.pending;
    const config = this.kvmRoot.config;
    if (pending === null || config === null) return;
    this.pending = null;
    const op = this.operations[this.next];
    const now = nowMs();
    let elapsed: u64 = 0;
    if (now > pending.startedMs) elapsed = now - pending.startedMs;
    recordCalloutLatency(op, elapsed);
    const outcome = finishClusterOperation(op, this.state, config.kvmService!, pending, answer, now);
    if (!this.settle(op, outcome)) {
      this.state.releaseBody();
      return;
    }
    const run = this.runFrom(this.next + 1);
    if (run == Run.Paused) return;
    if (run == Run.Done && this.finishRun()) continueRequest();
  }

  private completeBody(): Run {
    this.waitingForBody = false;
    this.bodyPhase = true;
    let body = getBufferBytes(BufferType.RequestBody, 0, this.bodySize);
    if (body === null) body = new ArrayBuffer(0);
    this.state.setBody(body);
    const run = this.runFrom(0);
    if (run == Run.Paused) return run;
    if (run == Run.Rejected) {
      this.state.releaseBody();
      return run;
    }
    if (!this.finishRun()) return Run.Rejected;
    return Run.Done;
  }

  // After the last operation: hand a changed body back to Envoy. false: that failed and the
  // local reply was sent.
  private finishRun(): bool {
    if (!this.bodyPhase) return true;
    const flushError = this.state.flushBody(this.bodySize);
    this.state.releaseBody();
    if (flushError !== null) {
      this.reject(this.operations[this.operations.length - 1], flushError);
      return false;
    }
    return true;
  }

  private anyNeedsBody(): bool {
    for (let i = 0; i < this.operations.length; i++) if (needsBody(this.operations[i])) return true;
    return false;
  }

  // Runs the operations from `start` in order, until one waits for a callout or fails without
  // on_error_continue (its local reply is then sent).
  private runFrom(start: i32): Run {
    for (let i = start; i < this.operations.length; i++) {
      const op = this.operations[i];
      if (op.policy == Policy.Cluster) {
        const run = this.startCluster(i, op);
        if (run != Run.Done) return run;
      } else if (!this.settle(op, runLocalOperation(op, this.state))) {
        return Run.Rejected;
      }
    }
    return Run.Done;
  }

  // Paused: the operation's callout is out. Done or Rejected: it finished at once (a cached get, a
  // key error, a refused dispatch), and Rejected means it stopped the request.
  private startCluster(index: i32, op: Operation): Run {
    const config = this.kvmRoot.config!;
    const started = startClusterOperation(
      op,
      this.state,
      config.kvmService!,
      this.kvmRoot.serviceToken,
      nowMs(),
      this.kvmRoot.callouts,
      this.context_id,
    );
    const pending = started.pending;
    if (pending !== null) {
      this.next = index;
      this.pending = pending;
      return Run.Paused;
    }
    if (this.settle(op, started.outcome!)) return Run.Done;
    return Run.Rejected;
  }

  // Counts an operation's outcome; false when it failed without on_error_continue (the local
  // reply has then been sent).
  private settle(op: Operation, outcome: OperationOutcome): bool {
    const error = outcome.error;
    if (error === null) {
      countResult(op, outcome.result);
      return true;
    }
    countResult(op, RESULT_ERROR);
    if (op.onErrorContinue) {
      log(LogLevel.Debug, describeFailure(op, error) + "; continuing (on_error_continue)");
      return true;
    }
    this.reject(op, error);
    return false;
  }

  private reject(op: Operation, error: OpError): void {
    // Debug, not info: clients can trigger these at will, and Envoy's default log level is info.
    log(LogLevel.Debug, describeFailure(op, error));
    this.state.dropResponseHeaders();
    const body =
      '{"error":' +
      jsonQuote(error.code) +
      ',"message":' +
      jsonQuote(error.message) +
      ',"kvm_name":' +
      jsonQuote(op.kvmName) +
      ',"operation_type":' +
      jsonQuote(operationName(op.operationType)) +
      "}";
    sendLocalResponse(
      error.status,
      "envoy_kvm_" + error.code,
      String.UTF8.encode(body),
      ["content-type"],
      [String.UTF8.encode("application/json")],
    );
  }
}

function describeFailure(op: Operation, error: OpError): string {
  let where = "";
  if (op.path.length > 0) where = op.path + " ";
  return (
    where +
    operationName(op.operationType) +
    " on kvm " +
    op.kvmName +
    " failed: " +
    error.code +
    ": " +
    error.message
  );
}
