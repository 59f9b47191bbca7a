// Runs one configured operation against the request. Returns the metric result
// (hit, miss, ok) or an error; never throws.
import { DestinationType, Operation, OperationType, Policy, SourceType } from "./model";
import { badRequest, OpError } from "./errors";
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from "./limits";
import { RequestState, sourceLabel } from "./request";
import { deleteLocalEntry, readLocalEntry, writeLocalEntry } from "./local_store";
import { RESULT_HIT, RESULT_MISS, RESULT_OK } from "./metrics";
import { nowMs } from "./hostcalls/calls";

export class OperationOutcome {
  constructor(
    public result: string,
    public error: OpError | null,
  ) {}
}

function failed(error: OpError): OperationOutcome {
  return new OperationOutcome("", error);
}

// Apigee composite keys: fragments joined with "__".
const KEY_SEPARATOR = "__";

class KeyResult {
  constructor(
    public key: ArrayBuffer | null,
    public error: OpError | null,
  ) {}
}

function composeKey(op: Operation, state: RequestState): KeyResult {
  const parts = new Array<ArrayBuffer>();
  let size = 0;
  const separator = String.UTF8.encode(KEY_SEPARATOR);
  for (let i = 0; i < op.key.length; i++) {
    const fragment = state.readSource(op.key[i]);
    if (fragment === null) {
      return new KeyResult(
        null,
        badRequest("missing_key", "key input " + sourceLabel(op.key[i]) + " is missing"),
      );
    }
    if (i > 0) size += separator.byteLength;
    size += fragment.byteLength;
    parts.push(fragment);
  }
  if (size == 0) return new KeyResult(null, badRequest("missing_key", "the key is empty"));
  if (size > MAX_KEY_BYTES) {
    return new KeyResult(
      null,
      badRequest(
        "key_too_long",
        "the key is " + size.toString() + " bytes; at most " + MAX_KEY_BYTES.toString() + " are allowed",
      ),
    );
  }
  const key = new ArrayBuffer(size);
  let offset: usize = 0;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) {
      memory.copy(changetype<usize>(key) + offset, changetype<usize>(separator), separator.byteLength);
      offset += separator.byteLength;
    }
    memory.copy(changetype<usize>(key) + offset, changetype<usize>(parts[i]), parts[i].byteLength);
    offset += parts[i].byteLength;
  }
  return new KeyResult(key, null);
}

export function needsBody(op: Operation): bool {
  for (let i = 0; i < op.key.length; i++) if (op.key[i].type == SourceType.Body) return true;
  const value = op.value;
  if (value !== null && value.type == SourceType.Body) return true;
  const output = op.output;
  if (output !== null && output.type == DestinationType.Body) return true;
  return false;
}

export function runOperation(op: Operation, state: RequestState): OperationOutcome {
  if (op.policy == Policy.Cluster) {
    return failed(
      new OpError(
        503,
        "policy_unavailable",
        "the cluster policy is not available in this build of the filter",
      ),
    );
  }
  const keyResult = composeKey(op, state);
  const keyError = keyResult.error;
  if (keyError !== null) return failed(keyError);
  const key = keyResult.key!;

  if (op.operationType == OperationType.Get) {
    const read = readLocalEntry(op.kvmName, key, nowMs());
    const readError = read.error;
    if (readError !== null) return failed(readError);
    const output = op.output!;
    const value = read.value;
    if (value !== null) {
      const writeError = state.writeDestination(output, value);
      if (writeError !== null) return failed(writeError);
      return new OperationOutcome(RESULT_HIT, null);
    }
    const fallback = op.defaultValue;
    if (fallback !== null) {
      const writeError = state.writeDestination(output, String.UTF8.encode(fallback));
      if (writeError !== null) return failed(writeError);
    }
    return new OperationOutcome(RESULT_MISS, null);
  }

  if (op.operationType == OperationType.Put) {
    const valueSource = op.value!;
    const value = state.readSource(valueSource);
    if (value === null) {
      return failed(badRequest("missing_value", "value input " + sourceLabel(valueSource) + " is missing"));
    }
    if (value.byteLength > MAX_VALUE_BYTES) {
      return failed(
        badRequest(
          "value_too_large",
          "the value is " +
            value.byteLength.toString() +
            " bytes; at most " +
            MAX_VALUE_BYTES.toString() +
            " are allowed",
        ),
      );
    }
    const writeError = writeLocalEntry(op.kvmName, key, value, op.ttlSeconds, op.override, nowMs());
    if (writeError !== null) return failed(writeError);
    return new OperationOutcome(RESULT_OK, null);
  }

  const deleteError = deleteLocalEntry(op.kvmName, key);
  if (deleteError !== null) return failed(deleteError);
  return new OperationOutcome(RESULT_OK, null);
}
