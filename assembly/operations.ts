// Running one configured operation against the request: its key, a put's value, a get's delivery,
// and the `local` policy. Returns the metric result (hit, miss, ok) or an error; never throws.
import { DestinationType, Operation, OperationType, SourceType } from "./model";
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

export class KeyResult {
  constructor(
    public key: ArrayBuffer | null,
    public error: OpError | null,
  ) {}
}

// Whether a fragment could take part in a separator: it contains "__" or begins or ends with "_".
// Fragments without any of these split back uniquely from the joined key, so no two combinations
// of them make the same key.
function makesSeparator(fragment: ArrayBuffer): bool {
  const n = fragment.byteLength;
  if (n == 0) return false;
  const base = changetype<usize>(fragment);
  if (load<u8>(base) == 0x5f || load<u8>(base + n - 1) == 0x5f) return true;
  for (let i = 1; i < n; i++) {
    if (load<u8>(base + i) == 0x5f && load<u8>(base + i - 1) == 0x5f) return true;
  }
  return false;
}

export function composeKey(op: Operation, state: RequestState): KeyResult {
  const parts = new Array<ArrayBuffer>();
  let size = 0;
  const separator = String.UTF8.encode(KEY_SEPARATOR);
  for (let i = 0; i < op.key.length; i++) {
    const source = op.key[i];
    const fragment = state.readSource(source);
    if (fragment === null) {
      const readError = state.readError;
      if (readError !== null) return new KeyResult(null, readError);
      return new KeyResult(
        null,
        badRequest("missing_key", "key input " + sourceLabel(source) + " is missing"),
      );
    }
    if (
      op.key.length > 1 &&
      !op.allowKeySeparator &&
      source.type != SourceType.Literal &&
      makesSeparator(fragment)
    ) {
      const what = ' contains the key separator "' + KEY_SEPARATOR + '" or begins or ends with "_"';
      return new KeyResult(null, badRequest("invalid_key", "key input " + sourceLabel(source) + what));
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

// A get's result reaches its destination: the value, or on a miss the default_value if any.
export function deliverGet(op: Operation, state: RequestState, value: ArrayBuffer | null): OperationOutcome {
  const output = op.output!;
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

export class ValueResult {
  constructor(
    public value: ArrayBuffer | null,
    public error: OpError | null,
  ) {}
}

// A put's value from its source, within the size limit shared with the KVM service.
export function readPutValue(op: Operation, state: RequestState): ValueResult {
  const valueSource = op.value!;
  const value = state.readSource(valueSource);
  if (value === null) {
    const readError = state.readError;
    if (readError !== null) return new ValueResult(null, readError);
    return new ValueResult(
      null,
      badRequest("missing_value", "value input " + sourceLabel(valueSource) + " is missing"),
    );
  }
  if (value.byteLength > MAX_VALUE_BYTES) {
    const size = value.byteLength.toString();
    const error = badRequest(
      "value_too_large",
      "the value is " + size + " bytes; at most " + MAX_VALUE_BYTES.toString() + " are allowed",
    );
    return new ValueResult(null, error);
  }
  return new ValueResult(value, null);
}

// A `local` operation, against Envoy shared data (local_store.ts).
export function runLocalOperation(op: Operation, state: RequestState): OperationOutcome {
  const keyResult = composeKey(op, state);
  const keyError = keyResult.error;
  if (keyError !== null) return failed(keyError);
  const key = keyResult.key!;

  if (op.operationType == OperationType.Get) {
    const read = readLocalEntry(op.kvmName, key);
    const readError = read.error;
    if (readError !== null) return failed(readError);
    return deliverGet(op, state, read.value);
  }

  if (op.operationType == OperationType.Put) {
    const valueResult = readPutValue(op, state);
    const valueError = valueResult.error;
    if (valueError !== null) return failed(valueError);
    const writeError = writeLocalEntry(
      op.kvmName,
      key,
      valueResult.value!,
      op.ttlSeconds,
      op.override,
      nowMs(),
    );
    if (writeError !== null) return failed(writeError);
    return new OperationOutcome(RESULT_OK, null);
  }

  const deleteError = deleteLocalEntry(op.kvmName, key);
  if (deleteError !== null) return failed(deleteError);
  return new OperationOutcome(RESULT_OK, null);
}
