// The configuration check's machinery: the field-table row (`Field`), the loop that runs a table
// (`Validator.walk`) and the checks every table shares. The tables are in config_fields.ts, the
// document level in config.ts.
import { JsonKind, JsonValue } from "./json";
import { OperationType, Source, SourceType } from "./model";
import { isTokenChar } from "./chars";
import { RESERVED_SHARED_CONTEXT_NAMES } from "./generated/schema_constants";
import { asciiLower, isBodyPath, memberPath } from "./config_text";

// Operation types a field applies to, as bits (1 << OperationType).
export const GET: i32 = 1 << OperationType.Get;
export const PUT: i32 = 1 << OperationType.Put;
export const DELETE: i32 = 1 << OperationType.Delete;
export const ANY: i32 = GET | PUT | DELETE;

export const PRINTABLE = "must be printable ASCII without spaces";
export const NOT_EMPTY = "must not be empty";

// Where a name is used decides what it may be.
export enum NameUse {
  Key, // a key fragment: a literal must be non-empty
  Value, // a put's value: a literal may be anything, "" included
}

// A field check: validates `value` (found at `where`) and stores it into `target`. A row without a
// name gets the object itself as `value` and the object's path as `where`.
export type Check<T> = (v: Validator, value: JsonValue, where: string, target: T) => bool;

export class Field<T> {
  constructor(
    public name: string,
    public ops: i32, // operation types it applies to; present for another one is an error
    public only: string, // what the error then says it needs ("operation_type is put")
    public required: string, // the message when missing where it applies; "" = optional
    public check: Check<T>,
  ) {}
}

export function field<T>(name: string, check: Check<T>): Field<T> {
  return new Field<T>(name, ANY, "", "", check);
}

export function requiredField<T>(name: string, required: string, check: Check<T>): Field<T> {
  return new Field<T>(name, ANY, "", required, check);
}

export function opField<T>(
  name: string,
  ops: i32,
  only: string,
  required: string,
  check: Check<T>,
): Field<T> {
  return new Field<T>(name, ops, only, required, check);
}

export function entityCheck<T>(check: Check<T>): Field<T> {
  return new Field<T>("", ANY, "", "", check);
}

export class Validator {
  error: string = "";
  // The operation type being checked, as a bit (ANY until operation_type is read).
  operationBit: i32 = ANY;
  // The source or destination type just read, for the name row after it.
  pendingType: i32 = 0;

  fail(where: string, what: string): bool {
    if (this.error.length == 0) this.error = where + ": " + what;
    return false;
  }

  // Runs `table` over `object`, in table order; false (with the error set) at the first problem.
  walk<T>(object: JsonValue, prefix: string, table: Field<T>[], target: T): bool {
    for (let i = 0; i < table.length; i++) {
      const row = table[i];
      const check = row.check;
      if (row.name.length == 0) {
        if (!check(this, object, prefix, target)) return false;
        continue;
      }
      const where = memberPath(prefix, row.name);
      const value = object.get(row.name);
      const applies = (row.ops & this.operationBit) != 0;
      if (value == null) {
        if (applies && row.required.length > 0) return this.fail(where, row.required);
        continue;
      }
      if (!applies) return this.fail(where, "only allowed when " + row.only);
      if (!check(this, value, where, target)) return false;
    }
    return true;
  }

  // Reports the first member (in source order) whose key is not in `allowed`.
  checkKnownFields(object: JsonValue, prefix: string, allowed: string[]): bool {
    for (let i = 0; i < object.keys.length; i++) {
      if (!allowed.includes(object.keys[i]))
        return this.fail(memberPath(prefix, object.keys[i]), "unknown field");
    }
    return true;
  }

  isString(value: JsonValue, where: string): bool {
    if (value.kind == JsonKind.String) return true;
    return this.fail(where, "must be a string");
  }

  isBool(value: JsonValue, where: string): bool {
    if (value.kind == JsonKind.Bool) return true;
    return this.fail(where, "must be a boolean");
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

  // The name of a source whose type `pendingType` holds.
  sourceName(value: JsonValue, where: string, use: NameUse): Source | null {
    if (!this.isString(value, where)) return null;
    const type = <SourceType>this.pendingType;
    let name = value.stringValue;
    let ok = true;
    if (type == SourceType.Header) {
      ok = this.headerName(name, where);
      name = asciiLower(name);
    } else if (type == SourceType.Body) {
      ok = this.bodyPath(name, where);
    } else if (type == SourceType.Query) {
      if (name.length == 0) ok = this.fail(where, NOT_EMPTY);
    } else if (type == SourceType.SharedContext) {
      ok = this.sharedContextName(name, where);
    } else if (use == NameUse.Key && name.length == 0) {
      // A literal key fragment: "" would make the key (or a composite part) silently empty.
      ok = this.fail(where, NOT_EMPTY);
    }
    if (!ok) return null;
    return new Source(type, name);
  }

  // Callers lower-case the name afterwards: Envoy keeps header maps lower-case.
  headerName(name: string, where: string): bool {
    if (name.length == 0) return this.fail(where, NOT_EMPTY);
    if (name.charCodeAt(0) == 0x3a) return this.fail(where, "must not be a pseudo-header");
    for (let i = 0; i < name.length; i++) {
      if (!isTokenChar(name.charCodeAt(i))) return this.fail(where, "must be a valid HTTP header name");
    }
    return true;
  }

  // A shared_context name is also the Envoy property path other filters read it by (one token).
  // Envoy answers some names itself before filter state (the schema's reserved list), so a
  // shared_context with one of them would never read what another filter set.
  sharedContextName(name: string, where: string): bool {
    if (name.length == 0) return this.fail(where, NOT_EMPTY);
    if (name.indexOf("\0") >= 0) return this.fail(where, "must not contain NUL");
    if (RESERVED_SHARED_CONTEXT_NAMES.includes(name)) {
      return this.fail(
        where,
        'must not be "' + name + '": Envoy answers that name itself, not from filter state',
      );
    }
    return true;
  }

  bodyPath(name: string, where: string): bool {
    if (isBodyPath(name)) return true;
    return this.fail(where, 'must be "" (the whole body) or a dotted path without empty segments');
  }
}
