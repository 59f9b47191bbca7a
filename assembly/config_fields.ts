// The field tables of the configuration check, one per JSON object, and their checks (see
// config.ts for the order rules, config_validator.ts for the loop that runs a table).
import { isAsciiAlphanumeric, isAsciiDigit } from "./chars";
import { JsonKind, JsonValue } from "./json";
import { hasLoneSurrogate } from "./utf8";
import { Destination, DestinationType, KvmService, Operation, OperationType, Policy } from "./model";
import {
  asciiLower,
  hasControlCharacter,
  isKvmName,
  isPrintableAscii,
  memberPath,
  oneOf,
  textOf,
} from "./config_text";
import {
  GET,
  NOT_EMPTY,
  UNICODE,
  NameUse,
  PRINTABLE,
  PUT,
  Validator,
  Field,
  entityCheck,
  field,
  opField,
  requiredField,
} from "./config_validator";
import {
  CACHE_TTL_MAX,
  CACHE_TTL_MIN,
  DESTINATION_TYPE_VALUES,
  KEY_FRAGMENT_FIELDS,
  KEY_FRAGMENTS_MAX,
  KEY_FRAGMENTS_MIN,
  KVM_NAME_MAX_LENGTH,
  KVM_NAME_MIN_LENGTH,
  OPERATION_TYPE_VALUES,
  POLICY_VALUES,
  SOURCE_TYPE_VALUES,
  TIMEOUT_MS_MAX,
  TIMEOUT_MS_MIN,
  TTL_MAX,
  TTL_MIN,
} from "./generated/schema_constants";

// ---- the tables ----------------------------------------------------------------------------
// Functions rather than module-level constants: AssemblyScript 0.17 emits an invalid start
// function for a top-level array of class instances. A configuration is parsed once per VM.

const ONLY_PUT = "operation_type is put";
const ONLY_GET = "operation_type is get";
const REQUIRED_FOR_PUT = "is required when operation_type is put";
const REQUIRED_FOR_GET = "is required when operation_type is get";

export function operationTable(): Field<Operation>[] {
  return [
    field<Operation>("policy", checkPolicy),
    requiredField<Operation>("kvm_name", "is required", checkKvmName),
    requiredField<Operation>("operation_type", "is required", checkOperationType),
    entityCheck<Operation>(checkKeyForms),
    field<Operation>("allow_key_separator", checkAllowKeySeparator),
    opField<Operation>("value_source_type", PUT, ONLY_PUT, REQUIRED_FOR_PUT, checkSourceType),
    opField<Operation>("value_source_name", PUT, ONLY_PUT, REQUIRED_FOR_PUT, checkValueName),
    opField<Operation>("output_destination_type", GET, ONLY_GET, REQUIRED_FOR_GET, checkDestinationType),
    opField<Operation>("output_destination_name", GET, ONLY_GET, REQUIRED_FOR_GET, checkDestinationName),
    opField<Operation>("ttl", PUT, ONLY_PUT, "", checkTtl),
    opField<Operation>("override", PUT, ONLY_PUT, "", checkOverride),
    opField<Operation>("default_value", GET, ONLY_GET, "", checkDefaultValue),
    opField<Operation>("cache_ttl", GET, ONLY_GET + " and policy is cluster", "", checkCacheTtl),
    field<Operation>("on_error_continue", checkOnErrorContinue),
  ];
}

// The key as key_source_type + key_source_name (when `key` is not given).
function keySourceTable(): Field<Operation>[] {
  return [
    requiredField<Operation>("key_source_type", "is required (or give key)", checkSourceType),
    requiredField<Operation>("key_source_name", "is required", checkKeyName),
  ];
}

// One fragment of a composite `key`.
function keyFragmentTable(): Field<Operation>[] {
  return [
    requiredField<Operation>("source_type", "is required", checkSourceType),
    requiredField<Operation>("source_name", "is required", checkKeyName),
  ];
}

export function kvmServiceTable(): Field<KvmService>[] {
  return [
    field<KvmService>("cluster", checkCluster),
    field<KvmService>("authority", checkAuthority),
    field<KvmService>("path_prefix", checkPathPrefix),
    field<KvmService>("timeout_ms", checkTimeout),
    field<KvmService>("token", checkToken),
    field<KvmService>("token_env", checkTokenEnv),
  ];
}

// ---- the checks ----------------------------------------------------------------------------

function checkPolicy(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  const policy = POLICY_VALUES.indexOf(textOf(value));
  if (policy < 0) return v.fail(where, oneOf(POLICY_VALUES));
  op.policy = <Policy>policy;
  return true;
}

function checkKvmName(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  if (!v.isString(value, where)) return false;
  const name = value.stringValue;
  if (!isKvmName(name, KVM_NAME_MIN_LENGTH, KVM_NAME_MAX_LENGTH)) {
    const length = KVM_NAME_MIN_LENGTH.toString() + " to " + KVM_NAME_MAX_LENGTH.toString();
    return v.fail(where, "must be " + length + ' letters, digits, ".", "_" or "-"');
  }
  op.kvmName = name;
  return true;
}

function checkOperationType(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  const type = OPERATION_TYPE_VALUES.indexOf(textOf(value));
  if (type < 0) return v.fail(where, oneOf(OPERATION_TYPE_VALUES));
  op.operationType = <OperationType>type;
  v.operationBit = 1 << type;
  return true;
}

// The key: key_source_type + key_source_name, or `key` (composite), exactly one of the two.
function checkKeyForms(v: Validator, object: JsonValue, prefix: string, op: Operation): bool {
  const composite = object.get("key");
  if (composite == null) return v.walk<Operation>(object, prefix, keySourceTable(), op);
  const keyWhere = memberPath(prefix, "key");
  if (object.get("key_source_type") != null || object.get("key_source_name") != null) {
    return v.fail(keyWhere, "give either key_source_type/key_source_name or key, not both");
  }
  const count = composite.items.length;
  if (composite.kind != JsonKind.Array || count < KEY_FRAGMENTS_MIN || count > KEY_FRAGMENTS_MAX) {
    const range = KEY_FRAGMENTS_MIN.toString() + " to " + KEY_FRAGMENTS_MAX.toString();
    return v.fail(keyWhere, "must be a list of " + range + " key fragments");
  }
  for (let i = 0; i < count; i++) {
    const fragment = composite.items[i];
    const where = keyWhere + "[" + i.toString() + "]";
    if (fragment.kind != JsonKind.Object) return v.fail(where, "must be an object");
    if (!v.checkKnownFields(fragment, where, KEY_FRAGMENT_FIELDS)) return false;
    if (!v.walk<Operation>(fragment, where, keyFragmentTable(), op)) return false;
  }
  return true;
}

// A source's type; its name (the next row) is checked against it.
function checkSourceType(v: Validator, value: JsonValue, where: string, _op: Operation): bool {
  const type = SOURCE_TYPE_VALUES.indexOf(textOf(value));
  if (type < 0) return v.fail(where, oneOf(SOURCE_TYPE_VALUES));
  v.pendingType = type;
  return true;
}

function checkKeyName(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  const source = v.sourceName(value, where, NameUse.Key);
  if (source == null) return false;
  op.key.push(source);
  return true;
}

function checkValueName(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  const source = v.sourceName(value, where, NameUse.Value);
  if (source == null) return false;
  op.value = source;
  return true;
}

function checkDestinationType(v: Validator, value: JsonValue, where: string, _op: Operation): bool {
  const type = DESTINATION_TYPE_VALUES.indexOf(textOf(value));
  if (type < 0) return v.fail(where, oneOf(DESTINATION_TYPE_VALUES));
  v.pendingType = type;
  return true;
}

function checkDestinationName(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  if (!v.isString(value, where)) return false;
  const type = <DestinationType>v.pendingType;
  let name = value.stringValue;
  if (type == DestinationType.Header || type == DestinationType.ResponseHeader) {
    if (!v.headerName(name, where)) return false;
    name = asciiLower(name);
  } else if (type == DestinationType.Body) {
    if (!v.bodyPath(name, where)) return false;
  } else if (type == DestinationType.SharedContext) {
    if (!v.sharedContextName(name, where)) return false;
  } else if (name.length == 0) {
    return v.fail(where, NOT_EMPTY);
  }
  op.output = new Destination(type, name);
  return true;
}

function checkTtl(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  const n = v.wholeNumber(value, where, TTL_MIN, TTL_MAX);
  if (n < 0) return false;
  op.ttlSeconds = <u32>n;
  return true;
}

function checkOverride(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  if (!v.isBool(value, where)) return false;
  op.override = value.boolValue;
  return true;
}

function checkAllowKeySeparator(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  if (!v.isBool(value, where)) return false;
  op.allowKeySeparator = value.boolValue;
  return true;
}

function checkDefaultValue(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  if (!v.isString(value, where)) return false;
  const s = value.stringValue;
  // The filter refuses such values for headers at run time (every miss would answer 400): say so now.
  const output = op.output;
  if (output != null && isHeaderDestination(output.type) && hasControlCharacter(s)) {
    return v.fail(where, "must not contain control characters (other than tab): it is written to a header");
  }
  if (hasLoneSurrogate(s)) return v.fail(where, UNICODE);
  op.defaultValue = s;
  return true;
}

function checkCacheTtl(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  if (op.policy != Policy.Cluster) {
    return v.fail(where, "only allowed when operation_type is get and policy is cluster");
  }
  const n = v.wholeNumber(value, where, CACHE_TTL_MIN, CACHE_TTL_MAX);
  if (n < 0) return false;
  op.cacheTtlSeconds = <u32>n;
  return true;
}

function checkOnErrorContinue(v: Validator, value: JsonValue, where: string, op: Operation): bool {
  if (!v.isBool(value, where)) return false;
  op.onErrorContinue = value.boolValue;
  return true;
}

function checkCluster(v: Validator, value: JsonValue, where: string, service: KvmService): bool {
  if (!v.isString(value, where)) return false;
  if (value.stringValue.length == 0) return v.fail(where, NOT_EMPTY);
  service.cluster = value.stringValue;
  return true;
}

function checkAuthority(v: Validator, value: JsonValue, where: string, service: KvmService): bool {
  if (!v.isString(value, where)) return false;
  const s = value.stringValue;
  if (s.length == 0) return v.fail(where, NOT_EMPTY);
  if (!isPrintableAscii(s)) return v.fail(where, PRINTABLE);
  service.authority = s;
  return true;
}

function checkPathPrefix(v: Validator, value: JsonValue, where: string, service: KvmService): bool {
  if (!v.isString(value, where)) return false;
  const s = value.stringValue;
  if (!s.startsWith("/")) return v.fail(where, 'must start with "/"');
  if (!isPrintableAscii(s)) return v.fail(where, PRINTABLE);
  service.pathPrefix = s;
  return true;
}

function checkTimeout(v: Validator, value: JsonValue, where: string, service: KvmService): bool {
  const n = v.wholeNumber(value, where, TIMEOUT_MS_MIN, TIMEOUT_MS_MAX);
  if (n < 0) return false;
  service.timeoutMs = <u32>n;
  return true;
}

function checkToken(v: Validator, value: JsonValue, where: string, service: KvmService): bool {
  if (!v.isString(value, where)) return false;
  if (!isPrintableAscii(value.stringValue)) return v.fail(where, PRINTABLE);
  service.token = value.stringValue;
  return true;
}

// A POSIX-style variable name: a letter or "_", then letters, digits and "_".
function checkTokenEnv(v: Validator, value: JsonValue, where: string, service: KvmService): bool {
  if (!v.isString(value, where)) return false;
  const name = value.stringValue;
  let valid = name.length > 0 && !isAsciiDigit(name.charCodeAt(0));
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (!isAsciiAlphanumeric(c) && c != 0x5f) valid = false;
  }
  if (!valid) {
    return v.fail(
      where,
      'must be an environment variable name (letters, digits, "_"; not starting with a digit)',
    );
  }
  service.tokenEnv = name;
  service.tokenEnvGiven = true;
  return true;
}

function isHeaderDestination(type: DestinationType): bool {
  return type == DestinationType.Header || type == DestinationType.ResponseHeader;
}
