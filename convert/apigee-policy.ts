// One Apigee KeyValueMapOperations policy → envoy-kvm operations (Apigee's policy reference: mapIdentifier /
// MapName, Scope, ExpiryTimeInSecs, InitialEntries, Get / Put / Delete with Key/Parameter, Value, assignTo,
// index, override, continueOnError), with a report line for every element.
import { child, children, type XmlElement } from "./xml.ts";
import {
  KVM_NAME,
  count,
  MAX_CACHE_TTL,
  type ImportFile,
  type Operation,
  type Policy,
  type Report,
} from "./model.ts";
import {
  destinationOf,
  looksLikeTemplate,
  sourceOf,
  type BodyVariables,
  type Mapped,
} from "./apigee-variables.ts";

/** Apigee's read-cache lifetime when ExpiryTimeInSecs is absent (seconds). */
const APIGEE_DEFAULT_EXPIRY = 300;
/** Apigee's map name when neither mapIdentifier nor MapName is given. */
const APIGEE_DEFAULT_MAP = "kvmap";

export interface PolicyContext {
  file: string;
  /** The API proxy's name (for apiproxy- and policy-scoped maps), or null for a lone policy file. */
  proxyName: string | null;
  policy: Policy;
  body: BodyVariables;
  report: Report;
}

export interface ConvertedPolicy {
  name: string;
  line: number;
  ops: Operation[];
  imports: ImportFile | null;
}

function describe(m: Mapped): string {
  const via = m.via === undefined ? "" : ` (via ${m.via})`;
  if (m.type === "literal") return `literal ${JSON.stringify(m.name)}`;
  return `${m.type} ${m.name === "" ? '"" (whole body)' : m.name}${via}`;
}

function tag(el: XmlElement): string {
  const attrs = Object.entries(el.attrs)
    .map(([k, v]) => ` ${k}="${v}"`)
    .join("");
  return `<${el.name}${attrs}>`;
}

/** Key/Parameter elements → the operation's key fields, or null (reported). */
function convertKey(op: XmlElement, ctx: PolicyContext): { fields: Operation; text: string } | null {
  const key = child(op, "Key");
  if (key === undefined) {
    ctx.report.add(ctx.file, op.line, "unsupported", `${tag(op)} has no <Key>: not converted`);
    return null;
  }
  const fragments: Mapped[] = [];
  let ok = true;
  for (const p of key.children) {
    if (p.name !== "Parameter") {
      ctx.report.add(ctx.file, p.line, "unsupported", `<${p.name}> in <Key> is not a <Parameter>`);
      ok = false;
      continue;
    }
    const m = parameter(p, ctx, sourceOf);
    if (m === null) ok = false;
    else fragments.push(m);
  }
  if (fragments.length === 0 && ok) {
    ctx.report.add(ctx.file, key.line, "unsupported", "<Key> has no <Parameter>");
    return null;
  }
  if (!ok) return null;
  if (fragments.length > 8) {
    ctx.report.add(
      ctx.file,
      key.line,
      "unsupported",
      `<Key> has ${fragments.length} parameters; envoy-kvm joins at most 8`,
    );
    return null;
  }
  const text = fragments.map(describe).join(" __ ");
  if (fragments.length === 1) {
    return { fields: { key_source_type: fragments[0].type, key_source_name: fragments[0].name }, text };
  }
  return { fields: { key: fragments.map((f) => ({ source_type: f.type, source_name: f.name })) }, text };
}

/** A Parameter or Value: `ref` → a source, text → a literal. */
function parameter(
  el: XmlElement,
  ctx: PolicyContext,
  map: (v: string, body: BodyVariables) => ReturnType<typeof sourceOf>,
  allowEmpty = false,
): Mapped | null {
  const ref = el.attrs.ref;
  if (ref !== undefined) {
    const m = map(ref, ctx.body);
    if ("unsupported" in m) {
      ctx.report.add(ctx.file, el.line, "unsupported", `<${el.name} ref="${ref}">: ${m.unsupported}`);
      return null;
    }
    return m;
  }
  if (looksLikeTemplate(el.text)) {
    ctx.report.add(
      ctx.file,
      el.line,
      "unsupported",
      `<${el.name}>${el.text}</${el.name}>: a message template; envoy-kvm literals are taken as written`,
    );
    return null;
  }
  if (el.text === "" && !allowEmpty) {
    ctx.report.add(ctx.file, el.line, "unsupported", `<${el.name}> is empty and has no ref`);
    return null;
  }
  return { type: "literal", name: el.text };
}

function mapName(root: XmlElement, ctx: PolicyContext): string | null {
  const element = child(root, "MapName");
  if (element?.attrs.ref !== undefined) {
    ctx.report.add(
      ctx.file,
      element.line,
      "unsupported",
      `<MapName ref="${element.attrs.ref}">: map names are fixed in envoy-kvm configurations`,
    );
    return null;
  }
  let name = element?.text || root.attrs.mapIdentifier;
  if (name === undefined || name === "") {
    name = APIGEE_DEFAULT_MAP;
    ctx.report.add(
      ctx.file,
      root.line,
      "note",
      `no mapIdentifier or <MapName>: Apigee's default map "${APIGEE_DEFAULT_MAP}"`,
    );
  }
  const scopeEl = child(root, "Scope");
  const scope = scopeEl?.text || "environment";
  let kvm = name;
  if (scope === "apiproxy" || scope === "policy") {
    if (ctx.proxyName === null) {
      ctx.report.add(
        ctx.file,
        scopeEl!.line,
        "note",
        `Scope ${scope} without its proxy: the map keeps the name "${name}"`,
      );
    } else {
      kvm = scope === "apiproxy" ? `${ctx.proxyName}.${name}` : `${ctx.proxyName}.${root.attrs.name}.${name}`;
      ctx.report.add(
        ctx.file,
        scopeEl!.line,
        "note",
        `Scope ${scope}: map "${kvm}", so no other proxy shares it`,
      );
    }
  } else if (scope !== "environment" && scope !== "organization") {
    ctx.report.add(
      ctx.file,
      scopeEl!.line,
      "unsupported",
      `Scope "${scope}" is not environment, organization, apiproxy or policy`,
    );
    return null;
  }
  if (!KVM_NAME.test(kvm)) {
    ctx.report.add(
      ctx.file,
      (element ?? root).line,
      "unsupported",
      `map name "${kvm}": envoy-kvm names are 1 to 128 letters, digits, ".", "_" or "-"`,
    );
    return null;
  }
  return kvm;
}

function cacheTtl(root: XmlElement, ctx: PolicyContext): number {
  const el = child(root, "ExpiryTimeInSecs");
  if (ctx.policy === "local") {
    if (el !== undefined) {
      ctx.report.add(
        ctx.file,
        el.line,
        "note",
        "ExpiryTimeInSecs: local maps have no read cache (a put is visible to the next get at once)",
      );
    }
    return 0;
  }
  if (el === undefined) {
    if (child(root, "Get") !== undefined) {
      ctx.report.add(
        ctx.file,
        root.line,
        "note",
        `no ExpiryTimeInSecs: Apigee's default ${APIGEE_DEFAULT_EXPIRY} s read cache, cache_ttl ${APIGEE_DEFAULT_EXPIRY} on cluster gets`,
      );
    }
    return APIGEE_DEFAULT_EXPIRY;
  }
  const n = Number(el.text);
  if (!Number.isInteger(n) || n < -1) {
    ctx.report.add(
      ctx.file,
      el.line,
      "unsupported",
      `ExpiryTimeInSecs "${el.text}" is not a whole number ≥ -1; gets use no cache`,
    );
    return 0;
  }
  if (n === -1 || n > MAX_CACHE_TTL) {
    ctx.report.add(ctx.file, el.line, "note", `ExpiryTimeInSecs ${n}: cache_ttl capped at ${MAX_CACHE_TTL}`);
    return MAX_CACHE_TTL;
  }
  ctx.report.add(
    ctx.file,
    el.line,
    "note",
    `ExpiryTimeInSecs ${n}: cluster gets keep a value ${n} s (cache_ttl)`,
  );
  return n;
}

function initialEntries(el: XmlElement, kvm: string, ctx: PolicyContext): ImportFile | null {
  if (ctx.policy === "local") {
    ctx.report.add(
      ctx.file,
      el.line,
      "unsupported",
      "<InitialEntries>: local maps (Envoy shared data) cannot be seeded; use policy cluster and envoy-kvm kvm import",
    );
    return null;
  }
  const entries: { name: string; value: string }[] = [];
  for (const entry of children(el, "Entry")) {
    const params = children(child(entry, "Key") ?? entry, "Parameter");
    const values = children(entry, "Value");
    if (params.length === 0 || params.some((p) => p.attrs.ref !== undefined || p.text === "")) {
      ctx.report.add(ctx.file, entry.line, "unsupported", "<Entry>: seed keys must be literal <Parameter>s");
      continue;
    }
    if (values.length !== 1) {
      ctx.report.add(
        ctx.file,
        entry.line,
        "unsupported",
        `<Entry> with ${values.length} values: envoy-kvm keeps one value per key`,
      );
      continue;
    }
    entries.push({ name: params.map((p) => p.text).join("__"), value: values[0].text });
  }
  ctx.report.add(
    ctx.file,
    el.line,
    "converted",
    `<InitialEntries>: ${count(entries.length, "entry", "entries")} for envoy-kvm kvm import ${kvm} (with --mode insert: seeds never replace)`,
  );
  return { kvm, entries };
}

export function convertPolicy(root: XmlElement, ctx: PolicyContext): ConvertedPolicy {
  const name = root.attrs.name ?? "(unnamed)";
  const out: ConvertedPolicy = { name, line: root.line, ops: [], imports: null };
  if (root.attrs.enabled === "false") {
    ctx.report.add(
      ctx.file,
      root.line,
      "note",
      `policy ${name} is disabled (enabled="false"), as in Apigee: not converted`,
    );
    return out;
  }
  const kvm = mapName(root, ctx);
  const ttl = cacheTtl(root, ctx);
  const onError = root.attrs.continueOnError === "true";
  const base = (type: string): Operation => ({ policy: ctx.policy, kvm_name: kvm, operation_type: type });
  for (const el of root.children) {
    switch (el.name) {
      case "DisplayName":
      case "Description":
      case "Scope":
      case "MapName":
      case "ExpiryTimeInSecs":
        break;
      case "ExclusiveCache":
        ctx.report.add(
          ctx.file,
          el.line,
          "note",
          "<ExclusiveCache> is deprecated in Apigee and has no effect here",
        );
        break;
      case "InitialEntries":
        if (kvm !== null) out.imports = initialEntries(el, kvm, ctx);
        break;
      case "Get": {
        const key = convertKey(el, ctx);
        const assignTo = el.attrs.assignTo;
        const index = el.attrs.index;
        let ok = key !== null && kvm !== null;
        if (assignTo === undefined) {
          ctx.report.add(ctx.file, el.line, "unsupported", "<Get> has no assignTo");
          ok = false;
        }
        if (index !== undefined && index !== "1") {
          ctx.report.add(
            ctx.file,
            el.line,
            "unsupported",
            `<Get index="${index}">: envoy-kvm keeps one value per key (index 1 only)`,
          );
          ok = false;
        }
        const dest = assignTo === undefined ? null : destinationOf(assignTo);
        if (dest !== null && "unsupported" in dest) {
          ctx.report.add(
            ctx.file,
            el.line,
            "unsupported",
            `<Get assignTo="${assignTo}">: ${dest.unsupported}`,
          );
          ok = false;
        }
        if (!ok || dest === null || "unsupported" in dest) break;
        const op: Operation = { ...base("get"), ...key!.fields };
        op.output_destination_type = dest.type;
        op.output_destination_name = dest.name;
        if (ctx.policy === "cluster" && ttl > 0) op.cache_ttl = ttl;
        if (onError) op.on_error_continue = true;
        out.ops.push(op);
        ctx.report.add(
          ctx.file,
          el.line,
          "converted",
          `${tag(el)}: get ${kvm} key ${key!.text} → ${describe(dest)}; a miss leaves it unset`,
        );
        break;
      }
      case "Put": {
        const key = convertKey(el, ctx);
        const values = children(el, "Value");
        let ok = key !== null && kvm !== null;
        let value: Mapped | null = null;
        if (values.length !== 1) {
          ctx.report.add(
            ctx.file,
            el.line,
            "unsupported",
            `<Put> with ${values.length} <Value>s: envoy-kvm keeps exactly one value per key`,
          );
          ok = false;
        } else {
          value = parameter(values[0], ctx, sourceOf, true);
          if (value === null) ok = false;
        }
        if (!ok || value === null) break;
        const override = el.attrs.override === "true";
        const op: Operation = {
          ...base("put"),
          ...key!.fields,
          value_source_type: value.type,
          value_source_name: value.name,
          override,
        };
        if (onError) op.on_error_continue = true;
        out.ops.push(op);
        ctx.report.add(
          ctx.file,
          el.line,
          "converted",
          `${tag(el)}: put ${kvm} key ${key!.text} ← ${describe(value)}, override ${override}`,
        );
        break;
      }
      case "Delete": {
        const key = convertKey(el, ctx);
        if (key === null || kvm === null) break;
        const op: Operation = { ...base("delete"), ...key.fields };
        if (onError) op.on_error_continue = true;
        out.ops.push(op);
        ctx.report.add(ctx.file, el.line, "converted", `${tag(el)}: delete ${kvm} key ${key.text}`);
        break;
      }
      default:
        ctx.report.add(ctx.file, el.line, "unsupported", `<${el.name}> has no envoy-kvm equivalent`);
    }
  }
  return out;
}
