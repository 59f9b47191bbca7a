// Parses and validates the plugin configuration (the JSON in the Envoy filter's `configuration`).
// Pure: no host calls. A rejected configuration yields exactly one line, `<where>: <what>`, for the
// first problem in a fixed order: at each object, unknown fields in source order, then the rows of
// that object's field table (config_fields.ts), in table order.
//
// Each object is described by a table of fields (as Kong plugin schemas declare theirs): a field's
// name, the operation types it applies to, the message when it is required and missing, and its
// check; a row without a name is an entity check, which sees the whole object. One loop
// (config_validator.ts `walk`) runs a table. Field names, enum values, bounds and defaults come
// from the JSON Schema (schema/plugin-config.schema.json, through generated/schema_constants.ts);
// test/filter/config-cases.ts proves the schema and this check agree on every case.

import { JsonKind, JsonValue, jsonQuote, parseJson } from "./json";
import { KvmService, Operation, ParseResult, PluginConfig, RouteOperations } from "./model";
import { isLastOccurrence, isWhitespaceOnly } from "./config_text";
import { ANY, Validator } from "./config_validator";
import { kvmServiceTable, operationTable } from "./config_fields";
import { KVM_SERVICE_FIELDS, LIST_FIELDS, OPERATION_FIELDS } from "./generated/schema_constants";

function parseDocument(v: Validator, text: Uint8Array): PluginConfig | null {
  if (isWhitespaceOnly(text)) {
    v.fail("configuration", "is empty; expected a JSON object");
    return null;
  }
  const parsed = parseJson(text);
  const root = parsed.value;
  if (root == null) {
    const at = " at byte " + parsed.errorOffset.toString();
    v.fail("configuration", "not valid JSON (" + parsed.errorMessage + at + ")");
    return null;
  }
  if (root.kind != JsonKind.Object) {
    v.fail("configuration", "must be a JSON object");
    return null;
  }
  const config = new PluginConfig();
  config.kvmService = new KvmService();
  let isListShape = false;
  for (let i = 0; i < LIST_FIELDS.length; i++) {
    if (root.get(LIST_FIELDS[i]) != null) isListShape = true;
  }
  if (!isListShape) {
    // Kong shape: the whole document is one operation.
    const op = operation(v, root, "");
    if (op == null) return null;
    config.operations.push(op);
    return config;
  }
  if (!v.checkKnownFields(root, "", LIST_FIELDS)) return null;
  let count = 0;
  const operations = root.get("operations");
  if (operations != null) {
    const list = operationList(v, operations, "operations");
    if (list == null) return null;
    config.operations = list;
    count += list.length;
  }
  const routes = root.get("routes");
  if (routes != null) {
    if (routes.kind != JsonKind.Object) {
      v.fail("routes", "must be an object mapping route names to lists of operations");
      return null;
    }
    for (let i = 0; i < routes.keys.length; i++) {
      if (!isLastOccurrence(routes, i)) continue;
      const name = routes.keys[i];
      const where = "routes[" + jsonQuote(name) + "]";
      if (name.length == 0) {
        v.fail(where, "route name must not be empty");
        return null;
      }
      const list = operationList(v, routes.values[i], where);
      if (list == null) return null;
      config.routes.push(new RouteOperations(name, list));
      count += list.length;
    }
  }
  const service = root.get("kvm_service");
  if (service != null) {
    const parsedService = kvmService(v, service);
    if (parsedService == null) return null;
    config.kvmService = parsedService;
  }
  if (count == 0) {
    v.fail("configuration", 'has no operations (give "operations" or "routes")');
    return null;
  }
  return config;
}

function operationList(v: Validator, value: JsonValue, where: string): Operation[] | null {
  if (value.kind != JsonKind.Array) {
    v.fail(where, "must be a list of operations");
    return null;
  }
  const list = new Array<Operation>();
  for (let i = 0; i < value.items.length; i++) {
    const op = operation(v, value.items[i], where + "[" + i.toString() + "]");
    if (op == null) return null;
    list.push(op);
  }
  return list;
}

function kvmService(v: Validator, value: JsonValue): KvmService | null {
  const prefix = "kvm_service";
  if (value.kind != JsonKind.Object) {
    v.fail(prefix, "must be an object");
    return null;
  }
  if (!v.checkKnownFields(value, prefix, KVM_SERVICE_FIELDS)) return null;
  const service = new KvmService();
  v.operationBit = ANY;
  if (!v.walk<KvmService>(value, prefix, kvmServiceTable(), service)) return null;
  if (value.get("token") != null && value.get("token_env") != null) {
    v.fail(prefix, "give token or token_env, not both");
    return null;
  }
  return service;
}

function operation(v: Validator, value: JsonValue, prefix: string): Operation | null {
  if (value.kind != JsonKind.Object) {
    v.fail(prefix, "must be an object");
    return null;
  }
  if (!v.checkKnownFields(value, prefix, OPERATION_FIELDS)) return null;
  const op = new Operation();
  op.path = prefix;
  v.operationBit = ANY;
  if (!v.walk<Operation>(value, prefix, operationTable(), op)) return null;
  return op;
}

// The configuration, or the first problem as one line `<where>: <what>`.
export function parseConfig(text: Uint8Array): ParseResult {
  const validator = new Validator();
  const config = parseDocument(validator, text);
  if (config == null) return new ParseResult(null, validator.error);
  return new ParseResult(config, "");
}
