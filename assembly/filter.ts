// The root context (configuration) and the per-request context (running the operations).
import {
  Context,
  FilterDataStatusValues,
  FilterHeadersStatusValues,
  FilterTrailersStatusValues,
  RootContext,
} from "@solo-io/proxy-runtime";
import { Operation, PluginConfig, Policy } from "./model";
import { parseConfig } from "./config";
import { OpError } from "./errors";
import { needsBody, runOperation } from "./operations";
import { countResult, operationName, RESULT_ERROR } from "./metrics";
import { RequestState } from "./request";
import { jsonQuote } from "./json";
import { BufferType, LogLevel } from "./hostcalls/abi";
import { getBufferBytes, getProperty, log, sendLocalResponse } from "./hostcalls/calls";
import { decodeUtf8 } from "./utf8";
import { releaseLeakedContextReferences } from "./sdk_fixes";

export class KvmRootContext extends RootContext {
  config: PluginConfig | null = null;

  // Replaces the SDK 0.1.8 onConfigure, which passes the size where the size pointer belongs
  // (envoy-host.md §10). A rejected configuration makes Envoy refuse the filter: one critical
  // line says exactly what is wrong and where.
  onConfigure(configurationSize: u32): bool {
    let raw = getBufferBytes(BufferType.PluginConfiguration, 0, configurationSize);
    if (raw === null) raw = new ArrayBuffer(0);
    const parsed = parseConfig(Uint8Array.wrap(raw));
    const config = parsed.config;
    if (config === null) {
      log(LogLevel.Critical, "invalid configuration: " + parsed.error);
      return false;
    }
    this.config = config;
    warnAboutClusterOperations(config);
    return true;
  }

  createContext(contextId: u32): Context {
    return new KvmHttpContext(contextId, this);
  }
}

// The cluster policy's configuration is accepted and validated already, but its callouts are not
// built yet: say so at configuration time rather than only with 503s at request time.
function warnAboutClusterOperations(config: PluginConfig): void {
  const lists = new Array<Operation[]>();
  lists.push(config.operations);
  for (let i = 0; i < config.routes.length; i++) lists.push(config.routes[i].operations);
  for (let l = 0; l < lists.length; l++) {
    const ops = lists[l];
    for (let i = 0; i < ops.length; i++) {
      if (ops[i].policy != Policy.Cluster) continue;
      let where = "operation";
      if (ops[i].path.length > 0) where = ops[i].path;
      log(
        LogLevel.Warn,
        where +
          ": policy cluster is not available in this build; the operation will answer 503 policy_unavailable",
      );
    }
  }
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

export class KvmHttpContext extends Context {
  private kvmRoot: KvmRootContext;
  private operations: Operation[] = [];
  private state: RequestState = new RequestState();
  private waitingForBody: bool = false;
  private bodySize: u32 = 0;

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
      // (envoy-host.md §5).
      this.waitingForBody = true;
      return FilterHeadersStatusValues.StopIteration;
    }
    return this.runAll() ? FilterHeadersStatusValues.Continue : FilterHeadersStatusValues.StopIteration;
  }

  onRequestBody(bodySize: usize, endOfStream: bool): FilterDataStatusValues {
    if (!this.waitingForBody) return FilterDataStatusValues.Continue;
    this.bodySize = bodySize as u32;
    if (!endOfStream) return FilterDataStatusValues.StopIterationAndBuffer;
    return this.completeBody()
      ? FilterDataStatusValues.Continue
      : FilterDataStatusValues.StopIterationNoBuffer;
  }

  // With trailers the last body callback has no end_of_stream: the body is complete here.
  onRequestTrailers(_trailers: u32): FilterTrailersStatusValues {
    if (!this.waitingForBody) return FilterTrailersStatusValues.Continue;
    return this.completeBody()
      ? FilterTrailersStatusValues.Continue
      : FilterTrailersStatusValues.StopIteration;
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
    releaseLeakedContextReferences(changetype<usize>(this));
  }

  private completeBody(): bool {
    this.waitingForBody = false;
    let body = getBufferBytes(BufferType.RequestBody, 0, this.bodySize);
    if (body === null) body = new ArrayBuffer(0);
    this.state.setBody(body);
    if (!this.runAll()) {
      this.state.releaseBody();
      return false;
    }
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

  // Runs every operation in order. false when one failed without on_error_continue; the local
  // reply has then been sent.
  private runAll(): bool {
    for (let i = 0; i < this.operations.length; i++) {
      const op = this.operations[i];
      const outcome = runOperation(op, this.state);
      const error = outcome.error;
      if (error === null) {
        countResult(op, outcome.result);
        continue;
      }
      countResult(op, RESULT_ERROR);
      if (op.onErrorContinue) {
        log(LogLevel.Debug, describeFailure(op, error) + "; continuing (on_error_continue)");
        continue;
      }
      this.reject(op, error);
      return false;
    }
    return true;
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
