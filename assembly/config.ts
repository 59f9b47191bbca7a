// Parses and validates the plugin configuration (the JSON in the Envoy filter's `configuration`).
// Pure: no host calls. A rejected configuration yields exactly one line, `<where>: <what>`, for the
// first problem in a fixed order: at each object, unknown fields in source order, then the known
// fields in the order of the checks below. schema/plugin-config.schema.json states the same rules;
// test/filter/config-cases.ts proves the two agree.

import { JsonKind, JsonValue, jsonQuote, parseJson } from "./json";
import {
  Destination,
  DestinationType,
  KvmService,
  Operation,
  OperationType,
  ParseResult,
  PluginConfig,
  Policy,
  RouteOperations,
  Source,
  SourceType,
} from "./model";

const MAX_KEY_FRAGMENTS: i32 = 8;
const MAX_TTL_SECONDS: f64 = 2147483647;
const MAX_CACHE_TTL_SECONDS: f64 = 86400;
const MAX_TIMEOUT_MS: f64 = 60000;

const LIST_FIELDS: string[] = ["operations", "routes", "kvm_service"];
const KVM_SERVICE_FIELDS: string[] = ["cluster", "authority", "path_prefix", "timeout_ms", "token"];
const OPERATION_FIELDS: string[] = [
  "policy",
  "kvm_name",
  "operation_type",
  "key_source_type",
  "key_source_name",
  "key",
  "value_source_type",
  "value_source_name",
  "output_destination_type",
  "output_destination_name",
  "ttl",
  "override",
  "default_value",
  "cache_ttl",
  "on_error_continue",
];
const KEY_FRAGMENT_FIELDS: string[] = ["source_type", "source_name"];

const SOURCE_TYPES = "header, query, body, shared_context, literal";
const DESTINATION_TYPES = "header, query, body, shared_context, response_header";

// Where a name is used decides what it may be.
enum NameUse {
  Key, // a key fragment: a literal must be non-empty
  Value, // a put's value: a literal may be anything, "" included
  Output, // a get's destination
}

function isPlainKey(key: string): bool {
  if (key.length == 0) return false;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x5f || c == 0x2d;
    if (!ok) return false;
  }
  return true;
}

// `prefix.key`, or `prefix["odd key"]` when the key is not a plain identifier, so a message stays
// on one line and names the field unambiguously. (No `?:` here: AssemblyScript 0.17 releases the
// result of `cond ? key : prefix + "." + key` once too often when it is the parameter.)
function memberPath(prefix: string, key: string): string {
  if (!isPlainKey(key)) return prefix + "[" + jsonQuote(key) + "]";
  if (prefix.length == 0) return key;
  return prefix + "." + key;
}

// RFC 9110 §5.6.2 token characters.
function isTokenChar(c: i32): bool {
  if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)) return true;
  return (
    c == 0x21 || // !
    c == 0x23 || // #
    c == 0x24 || // $
    c == 0x25 || // %
    c == 0x26 || // &
    c == 0x27 || // '
    c == 0x2a || // *
    c == 0x2b || // +
    c == 0x2d || // -
    c == 0x2e || // .
    c == 0x5e || // ^
    c == 0x5f || // _
    c == 0x60 || // `
    c == 0x7c || // |
    c == 0x7e // ~
  );
}

function isPrintableAscii(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// Header names reach here validated as token characters, so ASCII lower-casing is complete.
// Names Envoy answers itself when a filter reads a property: the CEL attribute roots and the
// wasm-specific tokens (source/extensions/common/wasm/context.cc findValue, property_tokens). A
// shared_context name equal to one of them would never read the filter state another filter set.
const ENVOY_ATTRIBUTE_NAMES: string[] = [
  "request", "response", "connection", "upstream", "source", "destination", "metadata", "filter_state",
  "upstream_filter_state", "xds", "node", "listener_direction", "listener_metadata", "cluster_name",
  "cluster_metadata", "route_name", "route_metadata", "upstream_host_metadata", "plugin_name", "plugin_root_id",
  "plugin_vm_id", "connection_id",
];

function isHeaderDestination(type: DestinationType): bool {
  return type == DestinationType.Header || type == DestinationType.ResponseHeader;
}

// What a header value may not carry (RFC 9110 field-value: HTAB, SP, VCHAR, obs-text); the
// filter's run-time check in request.ts is the same on the UTF-8 bytes.
function hasControlCharacter(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c != 0x09) || c == 0x7f) return true;
  }
  return false;
}

function asciiLower(s: string): string {
  const parts = new Array<string>(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    parts[i] = String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
  }
  return parts.join("");
}

function isBodyPath(s: string): bool {
  if (s.length == 0) return true; // the whole body
  const segments = s.split(".");
  for (let i = 0; i < segments.length; i++) {
    if (segments[i].length == 0) return false;
  }
  return true;
}

function isKvmName(s: string): bool {
  if (s.length < 1 || s.length > 128) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok =
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x30 && c <= 0x39) ||
      c == 0x2e ||
      c == 0x5f ||
      c == 0x2d;
    if (!ok) return false;
  }
  return true;
}

function isWhitespaceOnly(text: Uint8Array): bool {
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return false;
  }
  return true;
}

// The text of a string value, "" for any other JSON type (then no enum name matches). Written out
// rather than as `cond ? value.stringValue : ""`: AssemblyScript 0.17 miscounts references in
// ternaries mixing a field read and a literal (rtrace shows a leak, and a double free when one
// branch is a parameter).
function textOf(value: JsonValue): string {
  if (value.kind != JsonKind.String) return "";
  return value.stringValue;
}

function sourceTypeOf(name: string): i32 {
  if (name == "header") return SourceType.Header;
  if (name == "query") return SourceType.Query;
  if (name == "body") return SourceType.Body;
  if (name == "shared_context") return SourceType.SharedContext;
  if (name == "literal") return SourceType.Literal;
  return -1;
}

function destinationTypeOf(name: string): i32 {
  if (name == "header") return DestinationType.Header;
  if (name == "query") return DestinationType.Query;
  if (name == "body") return DestinationType.Body;
  if (name == "shared_context") return DestinationType.SharedContext;
  if (name == "response_header") return DestinationType.ResponseHeader;
  return -1;
}

// Whether member `index` is the last one with its key: with a repeated key only the last counts, as
// with JSON.parse (and so with the schema).
function isLastOccurrence(object: JsonValue, index: i32): bool {
  const key = object.keys[index];
  for (let j = index + 1; j < object.keys.length; j++) {
    if (object.keys[j] == key) return false;
  }
  return true;
}

class Validator {
  error: string = "";

  fail(where: string, what: string): bool {
    if (this.error.length == 0) this.error = where + ": " + what;
    return false;
  }

  // Reports the first member (in source order) whose key is not in `allowed`.
  checkKnownFields(object: JsonValue, prefix: string, allowed: string[]): bool {
    let unknown = -1;
    for (let i = 0; i < object.keys.length; i++) {
      if (!allowed.includes(object.keys[i])) {
        unknown = i;
        break;
      }
    }
    if (unknown < 0) return true;
    const where = memberPath(prefix, object.keys[unknown]);
    return this.fail(where, "unknown field");
  }

  isString(value: JsonValue, where: string): bool {
    if (value.kind == JsonKind.String) return true;
    return this.fail(where, "must be a string");
  }

  // A whole number in [min, max], or -1 with the error set.
  wholeNumber(value: JsonValue, where: string, min: f64, max: f64): f64 {
    const wholeMessage = "must be a whole number ≥ " + (<i32>min).toString();
    if (value.kind != JsonKind.Number) {
      this.fail(where, wholeMessage);
      return -1;
    }
    const n = value.numberValue;
    if (n < min) {
      this.fail(where, wholeMessage);
      return -1;
    }
    if (n > max) {
      this.fail(where, "must be at most " + (<i64>max).toString());
      return -1;
    }
    if (Math.floor(n) != n) {
      this.fail(where, wholeMessage);
      return -1;
    }
    return n;
  }

  parse(text: Uint8Array): PluginConfig | null {
    if (isWhitespaceOnly(text)) {
      this.fail("configuration", "is empty; expected a JSON object");
      return null;
    }
    const parsed = parseJson(text);
    const root = parsed.value;
    if (root == null) {
      this.fail(
        "configuration",
        "not valid JSON (" + parsed.errorMessage + " at byte " + parsed.errorOffset.toString() + ")",
      );
      return null;
    }
    if (root.kind != JsonKind.Object) {
      this.fail("configuration", "must be a JSON object");
      return null;
    }
    const config = new PluginConfig();
    config.kvmService = new KvmService();
    const isListShape = root.get("operations") != null || root.get("routes") != null || root.get("kvm_service") != null;
    if (!isListShape) {
      // Kong shape: the whole document is one operation.
      const op = this.operation(root, "");
      if (op == null) return null;
      config.operations.push(op);
      return config;
    }
    if (!this.checkKnownFields(root, "", LIST_FIELDS)) return null;
    let count = 0;
    const operations = root.get("operations");
    if (operations != null) {
      const list = this.operationList(operations, "operations");
      if (list == null) return null;
      config.operations = list;
      count += list.length;
    }
    const routes = root.get("routes");
    if (routes != null) {
      if (routes.kind != JsonKind.Object) {
        this.fail("routes", "must be an object mapping route names to lists of operations");
        return null;
      }
      for (let i = 0; i < routes.keys.length; i++) {
        if (!isLastOccurrence(routes, i)) continue;
        const name = routes.keys[i];
        const where = "routes[" + jsonQuote(name) + "]";
        if (name.length == 0) {
          this.fail(where, "route name must not be empty");
          return null;
        }
        const list = this.operationList(routes.values[i], where);
        if (list == null) return null;
        config.routes.push(new RouteOperations(name, list));
        count += list.length;
      }
    }
    const service = root.get("kvm_service");
    if (service != null) {
      const parsedService = this.kvmService(service);
      if (parsedService == null) return null;
      config.kvmService = parsedService;
    }
    if (count == 0) {
      this.fail("configuration", 'has no operations (give "operations" or "routes")');
      return null;
    }
    return config;
  }

  operationList(value: JsonValue, where: string): Operation[] | null {
    if (value.kind != JsonKind.Array) {
      this.fail(where, "must be a list of operations");
      return null;
    }
    const list = new Array<Operation>();
    for (let i = 0; i < value.items.length; i++) {
      const op = this.operation(value.items[i], where + "[" + i.toString() + "]");
      if (op == null) return null;
      list.push(op);
    }
    return list;
  }

  kvmService(value: JsonValue): KvmService | null {
    const prefix = "kvm_service";
    if (value.kind != JsonKind.Object) {
      this.fail(prefix, "must be an object");
      return null;
    }
    if (!this.checkKnownFields(value, prefix, KVM_SERVICE_FIELDS)) return null;
    const service = new KvmService();
    const cluster = value.get("cluster");
    if (cluster != null) {
      if (!this.isString(cluster, "kvm_service.cluster")) return null;
      const s = cluster.stringValue;
      if (s.length == 0) {
        this.fail("kvm_service.cluster", "must not be empty");
        return null;
      }
      service.cluster = s;
    }
    const authority = value.get("authority");
    if (authority != null) {
      if (!this.isString(authority, "kvm_service.authority")) return null;
      const s = authority.stringValue;
      if (s.length == 0) {
        this.fail("kvm_service.authority", "must not be empty");
        return null;
      }
      if (!isPrintableAscii(s)) {
        this.fail("kvm_service.authority", "must be printable ASCII without spaces");
        return null;
      }
      service.authority = s;
    }
    const pathPrefix = value.get("path_prefix");
    if (pathPrefix != null) {
      if (!this.isString(pathPrefix, "kvm_service.path_prefix")) return null;
      const s = pathPrefix.stringValue;
      if (!s.startsWith("/")) {
        this.fail("kvm_service.path_prefix", 'must start with "/"');
        return null;
      }
      if (!isPrintableAscii(s)) {
        this.fail("kvm_service.path_prefix", "must be printable ASCII without spaces");
        return null;
      }
      service.pathPrefix = s;
    }
    const timeout = value.get("timeout_ms");
    if (timeout != null) {
      const n = this.wholeNumber(timeout, "kvm_service.timeout_ms", 1, MAX_TIMEOUT_MS);
      if (n < 0) return null;
      service.timeoutMs = <u32>n;
    }
    const token = value.get("token");
    if (token != null) {
      if (!this.isString(token, "kvm_service.token")) return null;
      const s = token.stringValue;
      if (!isPrintableAscii(s)) {
        this.fail("kvm_service.token", "must be printable ASCII without spaces");
        return null;
      }
      service.token = s;
    }
    return service;
  }

  operation(value: JsonValue, prefix: string): Operation | null {
    if (value.kind != JsonKind.Object) {
      this.fail(prefix, "must be an object");
      return null;
    }
    if (!this.checkKnownFields(value, prefix, OPERATION_FIELDS)) return null;
    const op = new Operation();
    op.path = prefix;

    const policy = value.get("policy");
    if (policy != null) {
      const p = textOf(policy);
      if (p == "local") op.policy = Policy.Local;
      else if (p == "cluster") op.policy = Policy.Cluster;
      else {
        this.fail(memberPath(prefix, "policy"), "must be one of local, cluster");
        return null;
      }
    }

    const kvmName = value.get("kvm_name");
    const kvmNameWhere = memberPath(prefix, "kvm_name");
    if (kvmName == null) {
      this.fail(kvmNameWhere, "is required");
      return null;
    }
    if (!this.isString(kvmName, kvmNameWhere)) return null;
    const name = kvmName.stringValue;
    if (!isKvmName(name)) {
      this.fail(kvmNameWhere, 'must be 1 to 128 letters, digits, ".", "_" or "-"');
      return null;
    }
    op.kvmName = name;

    const operationType = value.get("operation_type");
    const typeWhere = memberPath(prefix, "operation_type");
    if (operationType == null) {
      this.fail(typeWhere, "is required");
      return null;
    }
    const t = textOf(operationType);
    if (t == "get") op.operationType = OperationType.Get;
    else if (t == "put") op.operationType = OperationType.Put;
    else if (t == "delete") op.operationType = OperationType.Delete;
    else {
      this.fail(typeWhere, "must be one of get, put, delete");
      return null;
    }
    const isGet = op.operationType == OperationType.Get;
    const isPut = op.operationType == OperationType.Put;

    if (!this.key(value, prefix, op)) return null;

    // The value a put stores.
    const valueType = value.get("value_source_type");
    const valueName = value.get("value_source_name");
    if (isPut) {
      const source = this.sourcePair(
        valueType,
        valueName,
        memberPath(prefix, "value_source_type"),
        memberPath(prefix, "value_source_name"),
        "is required when operation_type is put",
        NameUse.Value,
      );
      if (source == null) return null;
      op.value = source;
    } else if (valueType != null || valueName != null) {
      const field = valueType != null ? "value_source_type" : "value_source_name";
      this.fail(memberPath(prefix, field), "only allowed when operation_type is put");
      return null;
    }

    // Where a get writes its result.
    const outputType = value.get("output_destination_type");
    const outputName = value.get("output_destination_name");
    if (isGet) {
      const output = this.destination(outputType, outputName, prefix);
      if (output == null) return null;
      op.output = output;
    } else if (outputType != null || outputName != null) {
      const field = outputType != null ? "output_destination_type" : "output_destination_name";
      this.fail(memberPath(prefix, field), "only allowed when operation_type is get");
      return null;
    }

    const ttl = value.get("ttl");
    if (ttl != null) {
      const where = memberPath(prefix, "ttl");
      if (!isPut) return this.failOperation(where, "only allowed when operation_type is put");
      const n = this.wholeNumber(ttl, where, 0, MAX_TTL_SECONDS);
      if (n < 0) return null;
      op.ttlSeconds = <u32>n;
    }

    const override = value.get("override");
    if (override != null) {
      const where = memberPath(prefix, "override");
      if (!isPut) return this.failOperation(where, "only allowed when operation_type is put");
      if (override.kind != JsonKind.Bool) return this.failOperation(where, "must be a boolean");
      op.override = override.boolValue;
    }

    const defaultValue = value.get("default_value");
    if (defaultValue != null) {
      const where = memberPath(prefix, "default_value");
      if (!isGet) return this.failOperation(where, "only allowed when operation_type is get");
      if (!this.isString(defaultValue, where)) return null;
      const s = defaultValue.stringValue;
      // The filter refuses such values for headers at run time (every miss would answer 400): say so now.
      const output = op.output;
      if (output != null && isHeaderDestination(output.type) && hasControlCharacter(s)) {
        return this.failOperation(where, "must not contain control characters (other than tab): it is written to a header");
      }
      op.defaultValue = s;
    }

    const cacheTtl = value.get("cache_ttl");
    if (cacheTtl != null) {
      const where = memberPath(prefix, "cache_ttl");
      if (!isGet || op.policy != Policy.Cluster) {
        return this.failOperation(where, "only allowed when operation_type is get and policy is cluster");
      }
      const n = this.wholeNumber(cacheTtl, where, 0, MAX_CACHE_TTL_SECONDS);
      if (n < 0) return null;
      op.cacheTtlSeconds = <u32>n;
    }

    const onErrorContinue = value.get("on_error_continue");
    if (onErrorContinue != null) {
      if (onErrorContinue.kind != JsonKind.Bool) {
        return this.failOperation(memberPath(prefix, "on_error_continue"), "must be a boolean");
      }
      op.onErrorContinue = onErrorContinue.boolValue;
    }
    return op;
  }

  failOperation(where: string, what: string): Operation | null {
    this.fail(where, what);
    return null;
  }

  // The key: key_source_type + key_source_name, or `key` (composite), exactly one of the two.
  key(value: JsonValue, prefix: string, op: Operation): bool {
    const keyType = value.get("key_source_type");
    const keyName = value.get("key_source_name");
    const composite = value.get("key");
    const keyWhere = memberPath(prefix, "key");
    if (composite != null) {
      if (keyType != null || keyName != null) {
        return this.fail(keyWhere, "give either key_source_type/key_source_name or key, not both");
      }
      if (
        composite.kind != JsonKind.Array ||
        composite.items.length < 1 ||
        composite.items.length > MAX_KEY_FRAGMENTS
      ) {
        return this.fail(keyWhere, "must be a list of 1 to " + MAX_KEY_FRAGMENTS.toString() + " key fragments");
      }
      for (let i = 0; i < composite.items.length; i++) {
        const fragment = composite.items[i];
        const where = keyWhere + "[" + i.toString() + "]";
        if (fragment.kind != JsonKind.Object) return this.fail(where, "must be an object");
        if (!this.checkKnownFields(fragment, where, KEY_FRAGMENT_FIELDS)) return false;
        const source = this.sourcePair(
          fragment.get("source_type"),
          fragment.get("source_name"),
          where + ".source_type",
          where + ".source_name",
          "is required",
          NameUse.Key,
        );
        if (source == null) return false;
        op.key.push(source);
      }
      return true;
    }
    const typeWhere = memberPath(prefix, "key_source_type");
    if (keyType == null) return this.fail(typeWhere, "is required (or give key)");
    const source = this.sourcePair(
      keyType,
      keyName,
      typeWhere,
      memberPath(prefix, "key_source_name"),
      "is required",
      NameUse.Key,
    );
    if (source == null) return false;
    op.key.push(source);
    return true;
  }

  sourcePair(
    typeValue: JsonValue | null,
    nameValue: JsonValue | null,
    typeWhere: string,
    nameWhere: string,
    missing: string,
    use: NameUse,
  ): Source | null {
    if (typeValue == null) {
      this.fail(typeWhere, missing);
      return null;
    }
    const type = sourceTypeOf(textOf(typeValue));
    if (type < 0) {
      this.fail(typeWhere, "must be one of " + SOURCE_TYPES);
      return null;
    }
    if (nameValue == null) {
      this.fail(nameWhere, missing);
      return null;
    }
    if (!this.isString(nameValue, nameWhere)) return null;
    let name = nameValue.stringValue;
    if (type == SourceType.Header) {
      if (!this.isHeaderName(name, nameWhere)) return null;
      name = asciiLower(name);
    } else if (type == SourceType.Body) {
      if (!this.bodyPath(name, nameWhere)) return null;
    } else if (type == SourceType.Query) {
      if (name.length == 0) {
        this.fail(nameWhere, "must not be empty");
        return null;
      }
    } else if (type == SourceType.SharedContext) {
      if (!this.sharedContextName(name, nameWhere)) return null;
    } else if (use == NameUse.Key && name.length == 0) {
      // A literal key fragment: "" would make the key (or a composite part) silently empty.
      this.fail(nameWhere, "must not be empty");
      return null;
    }
    return new Source(<SourceType>type, name);
  }

  destination(typeValue: JsonValue | null, nameValue: JsonValue | null, prefix: string): Destination | null {
    const typeWhere = memberPath(prefix, "output_destination_type");
    const nameWhere = memberPath(prefix, "output_destination_name");
    if (typeValue == null) {
      this.fail(typeWhere, "is required when operation_type is get");
      return null;
    }
    const type = destinationTypeOf(textOf(typeValue));
    if (type < 0) {
      this.fail(typeWhere, "must be one of " + DESTINATION_TYPES);
      return null;
    }
    if (nameValue == null) {
      this.fail(nameWhere, "is required when operation_type is get");
      return null;
    }
    if (!this.isString(nameValue, nameWhere)) return null;
    let name = nameValue.stringValue;
    if (type == DestinationType.Header || type == DestinationType.ResponseHeader) {
      if (!this.isHeaderName(name, nameWhere)) return null;
      name = asciiLower(name);
    } else if (type == DestinationType.Body) {
      if (!this.bodyPath(name, nameWhere)) return null;
    } else if (type == DestinationType.SharedContext) {
      if (!this.sharedContextName(name, nameWhere)) return null;
    } else if (name.length == 0) {
      this.fail(nameWhere, "must not be empty");
      return null;
    }
    return new Destination(<DestinationType>type, name);
  }

  // Callers lower-case the name afterwards: Envoy keeps header maps lower-case.
  isHeaderName(name: string, where: string): bool {
    if (name.length == 0) return this.fail(where, "must not be empty");
    if (name.charCodeAt(0) == 0x3a) return this.fail(where, "must not be a pseudo-header");
    for (let i = 0; i < name.length; i++) {
      if (!isTokenChar(name.charCodeAt(i))) return this.fail(where, "must be a valid HTTP header name");
    }
    return true;
  }

  // A shared_context name is also the Envoy property path other filters read it by (one token).
  sharedContextName(name: string, where: string): bool {
    if (name.length == 0) return this.fail(where, "must not be empty");
    if (name.indexOf("\0") >= 0) return this.fail(where, "must not contain NUL");
    if (ENVOY_ATTRIBUTE_NAMES.includes(name)) {
      return this.fail(where, 'must not be "' + name + '": Envoy answers that name itself, not from filter state');
    }
    return true;
  }

  bodyPath(name: string, where: string): bool {
    if (isBodyPath(name)) return true;
    return this.fail(where, 'must be "" (the whole body) or a dotted path without empty segments');
  }
}

// The configuration, or the first problem as one line `<where>: <what>`.
export function parseConfig(text: Uint8Array): ParseResult {
  const validator = new Validator();
  const config = validator.parse(text);
  if (config == null) return new ParseResult(null, validator.error);
  return new ParseResult(config, "");
}
