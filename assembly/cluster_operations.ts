// The `cluster` policy: an operation that asks the KVM service through an Envoy callout. It runs
// in two halves: `startClusterOperation` (in the request's callback: compose the key, serve a
// fresh cached get, or dispatch the callout) and `finishClusterOperation` (in the root context's
// proxy_on_http_call_response, with the stream as effective context: interpret the answer).
// Every failure becomes an OpError; nothing here throws.
import { KvmService, Operation, OperationType } from "./model";
import { OpError } from "./errors";
import { RequestState } from "./request";
import { composeKey, deliverGet, OperationOutcome, readPutValue } from "./operations";
import { answerError, CalloutAnswer, dispatchCallout, dispatchError } from "./cluster_client";
import { CachedEntry, dropCache, freshUntil, readCache, writeCache } from "./cluster_cache";
import { Callouts, sharedGetKey } from "./callouts";
import {
  CACHE_HIT,
  CACHE_MISS,
  CACHE_REVALIDATED,
  CALLOUT_SHARED,
  calloutOutcomeName,
  countEvent,
  RESULT_OK,
} from "./metrics";
import { LogLevel, WasmResult } from "./hostcalls/abi";
import { log } from "./hostcalls/calls";

// A refused dispatch (no such cluster) is a configuration problem: say it once per worker, not
// once per request (each worker is its own VM, so this flag is per worker).
let refusedDispatchLogged = false;

// What the request keeps while its callout is out.
export class PendingOperation {
  constructor(
    public token: u32,
    public key: ArrayBuffer,
    public cached: CachedEntry | null,
    public startedMs: u64,
    public joined: bool, // waits on another request's get: that one counts the callout's outcome
  ) {}
}

export class ClusterStart {
  constructor(
    public outcome: OperationOutcome | null, // set: the operation finished without a callout
    public pending: PendingOperation | null, // set: wait for the answer
  ) {}
}

function finished(outcome: OperationOutcome): ClusterStart {
  return new ClusterStart(outcome, null);
}

function failedStart(error: OpError): ClusterStart {
  return finished(new OperationOutcome("", error));
}

// `callouts` is the root context's table; `contextId` the stream that waits if a callout is out.
export function startClusterOperation(
  op: Operation,
  state: RequestState,
  service: KvmService,
  token: string,
  nowMs: u64,
  callouts: Callouts,
  contextId: u32,
): ClusterStart {
  const keyResult = composeKey(op, state);
  const keyError = keyResult.error;
  if (keyError !== null) return failedStart(keyError);
  const key = keyResult.key!;

  let value: ArrayBuffer | null = null;
  let cached: CachedEntry | null = null;
  let revalidate: u64 = 0;
  if (op.operationType == OperationType.Get && op.cacheTtlSeconds > 0) {
    cached = readCache(op.kvmName, key);
    if (cached !== null && cached.isFreshAt(nowMs)) {
      countEvent(op, CACHE_HIT);
      if (cached.present) return finished(deliverGet(op, state, cached.payload));
      return finished(deliverGet(op, state, null));
    }
    countEvent(op, CACHE_MISS);
    if (cached !== null && cached.present) revalidate = cached.version;
  } else if (op.operationType == OperationType.Put) {
    const valueResult = readPutValue(op, state);
    const valueError = valueResult.error;
    if (valueError !== null) return failedStart(valueError);
    value = valueResult.value;
  }

  // A get joins the same get already out; a put or delete stops later gets from joining one
  // dispatched before it (their answer could predate the write).
  const getKey = sharedGetKey(op.kvmName, key);
  if (op.operationType == OperationType.Get) {
    const shared = callouts.sharedGet(getKey, revalidate);
    if (shared != 0) {
      countEvent(op, CALLOUT_SHARED);
      callouts.join(shared, contextId);
      return new ClusterStart(null, new PendingOperation(shared, key, cached, nowMs, true));
    }
  } else {
    callouts.forgetGet(getKey);
  }

  const dispatch = dispatchCallout(service, token, op, key, value, revalidate);
  if (dispatch.result != WasmResult.Ok) {
    countEvent(op, calloutOutcomeName(0, true));
    const error = dispatchError(service, dispatch.result);
    if (!refusedDispatchLogged) {
      refusedDispatchLogged = true;
      log(
        LogLevel.Error,
        error.message + "; cluster operations answer 503 until it is (logged once per worker)",
      );
    }
    return failedStart(error);
  }
  let sharedKey = "";
  if (op.operationType == OperationType.Get) sharedKey = getKey;
  callouts.dispatched(dispatch.token, sharedKey, revalidate, contextId);
  return new ClusterStart(null, new PendingOperation(dispatch.token, key, cached, nowMs, false));
}

export function finishClusterOperation(
  op: Operation,
  state: RequestState,
  service: KvmService,
  pending: PendingOperation,
  answer: CalloutAnswer,
  nowMs: u64,
): OperationOutcome {
  if (!pending.joined) countEvent(op, calloutOutcomeName(answer.status, false));
  const status = answer.status;
  const key = pending.key;
  if (op.operationType == OperationType.Get) {
    if (status == 200) {
      if (op.cacheTtlSeconds > 0) {
        writeCache(
          op.kvmName,
          key,
          new CachedEntry(freshUntil(nowMs, op.cacheTtlSeconds), true, answer.version, answer.body),
        );
      }
      return deliverGet(op, state, answer.body);
    }
    if (status == 404) {
      if (op.cacheTtlSeconds > 0) {
        writeCache(
          op.kvmName,
          key,
          new CachedEntry(freshUntil(nowMs, op.cacheTtlSeconds), false, 0, new ArrayBuffer(0)),
        );
      }
      return deliverGet(op, state, null);
    }
    const cached = pending.cached;
    if (status == 304 && cached !== null && cached.present) {
      countEvent(op, CACHE_REVALIDATED);
      cached.freshUntilMs = freshUntil(nowMs, op.cacheTtlSeconds);
      writeCache(op.kvmName, key, cached);
      return deliverGet(op, state, cached.payload);
    }
    return new OperationOutcome("", answerError(service, answer));
  }
  // put: 201 created, 200 replaced; 412 with override false = an entry is there and is kept.
  // delete: 204 (also when absent), 200 tolerated.
  let ok = false;
  if (op.operationType == OperationType.Put)
    ok = status == 200 || status == 201 || (status == 412 && !op.override);
  else ok = status == 204 || status == 200 || status == 404;
  if (!ok) return new OperationOutcome("", answerError(service, answer));
  // Any cached copy is now out of date on this Envoy (other nodes: within their cache_ttl).
  dropCache(op.kvmName, key);
  return new OperationOutcome(RESULT_OK, null);
}
