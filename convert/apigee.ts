// `envoy-kvm convert apigee`: an Apigee proxy (policy file, apiproxy folder or bundle .zip) → the list
// configuration. Proxy endpoint flows become Envoy routes: the catch-all route of an endpoint runs PreFlow then
// PostFlow request steps; a conditional flow's route runs PreFlow, the flow's steps, then PostFlow, as Apigee runs
// the first matching flow between the two. Response-flow, target-endpoint and conditional steps are reported.
import { basename } from "node:path";
import { readBundle, type BundleFile } from "./apigee-bundle.ts";
import { conditionToMatch } from "./apigee-conditions.ts";
import { convertPolicy, type ConvertedPolicy } from "./apigee-policy.ts";
import { dottedPath, type BodyVariables } from "./apigee-variables.ts";
import {
  Report,
  count,
  type Conversion,
  type EnvoyRoute,
  type ImportFile,
  type Operation,
  type Policy,
} from "./model.ts";
import { XmlError, child, children, parseXml, type XmlElement } from "./xml.ts";

interface Parsed {
  file: BundleFile;
  root: XmlElement;
}

interface Step {
  el: XmlElement;
  policy: string;
  line: number;
  condition: XmlElement | undefined;
}

function parseAll(files: BundleFile[], report: Report): Parsed[] {
  const out: Parsed[] = [];
  for (const file of files) {
    try {
      out.push({ file, root: parseXml(file.text) });
    } catch (err) {
      if (!(err instanceof XmlError)) throw err;
      report.add(file.display, 1, "unsupported", `not well-formed XML: ${err.message}`);
    }
  }
  return out;
}

/** Variables ExtractVariables policies fill from the request's JSON body. */
function bodyVariables(policies: Parsed[]): BodyVariables {
  const vars: BodyVariables = new Map();
  for (const { root } of policies) {
    if (root.name !== "ExtractVariables") continue;
    const source = child(root, "Source")?.text || "request";
    const json = child(root, "JSONPayload");
    if (json === undefined || source !== "request") continue;
    const prefix = child(root, "VariablePrefix")?.text ?? "";
    for (const v of children(json, "Variable")) {
      const path = child(v, "JSONPath")?.text ?? "";
      const name = prefix === "" ? v.attrs.name : `${prefix}.${v.attrs.name}`;
      vars.set(name, { path: dottedPath(path), policy: root.attrs.name ?? "(unnamed)" });
    }
  }
  return vars;
}

function steps(flow: XmlElement | undefined, phase: "Request" | "Response"): Step[] {
  const list = flow === undefined ? undefined : child(flow, phase);
  if (list === undefined) return [];
  return children(list, "Step").map((s) => ({
    el: s,
    policy: child(s, "Name")?.text ?? "",
    line: s.line,
    condition: child(s, "Condition"),
  }));
}

export function convertApigee(input: string, opts: { policy: Policy }): Conversion {
  const report = new Report();
  const bundle = readBundle(input);
  const imports: ImportFile[] = [];
  const routes: Record<string, Operation[]> = {};
  const envoyRoutes: EnvoyRoute[] = [];

  if (bundle.kind === "policy") {
    const file = bundle.files[0];
    let root: XmlElement;
    try {
      root = parseXml(file.text);
    } catch (err) {
      throw new Error(`${file.display} is not an Apigee policy: ${(err as Error).message}`);
    }
    if (root.name !== "KeyValueMapOperations") {
      throw new Error(
        `${file.display} is a <${root.name}>, not a KeyValueMapOperations policy (give the apiproxy folder or bundle)`,
      );
    }
    const ctx = { file: file.display, proxyName: null, policy: opts.policy, body: new Map(), report };
    const converted = convertPolicy(root, ctx);
    if (converted.imports !== null) imports.push(converted.imports);
    envoyRoutes.push({ name: "default", match: { prefix: "/" } });
    return { config: { operations: converted.ops }, envoyRoutes, imports, report };
  }

  const parsed = parseAll(bundle.files, report);
  const inFolder = (folder: string) => parsed.filter((p) => p.file.path.startsWith(`apiproxy/${folder}/`));
  const policies = inFolder("policies");
  const descriptor = parsed.find(
    (p) => /^apiproxy\/[^/]+\.xml$/.test(p.file.path) && p.root.name === "APIProxy",
  );
  const proxyName = descriptor?.root.attrs.name ?? basename(input).replace(/\.zip$/i, "");
  const body = bodyVariables(policies);

  // Every KVM policy, converted once; the routes reference its operations.
  const kvm = new Map<string, ConvertedPolicy & { file: string; used: boolean }>();
  for (const { file, root } of policies) {
    if (root.name !== "KeyValueMapOperations") continue;
    const converted = convertPolicy(root, {
      file: file.display,
      proxyName,
      policy: opts.policy,
      body,
      report,
    });
    kvm.set(converted.name, { ...converted, file: file.display, used: false });
    if (converted.imports !== null) imports.push(converted.imports);
  }

  /** Step elements converted or reported by the flow walk; every other KVM step is reported afterwards. */
  const handled = new Set<XmlElement>();
  /** The operations of the KVM steps in a list (other policies' steps are not ours); conditional steps reported. */
  const opsOf = (list: Step[], file: string, where: string): Operation[] => {
    const ops: Operation[] = [];
    for (const step of list) {
      const policy = kvm.get(step.policy);
      if (policy === undefined) continue;
      policy.used = true;
      handled.add(step.el);
      if (step.condition !== undefined && step.condition.text !== "") {
        report.add(
          file,
          step.condition.line,
          "unsupported",
          `step ${step.policy} in ${where} has a <Condition> (${step.condition.text}): steps run unconditionally in envoy-kvm; not converted`,
        );
        continue;
      }
      ops.push(...policy.ops);
    }
    return ops;
  };
  const reportResponse = (list: Step[], file: string, where: string) => {
    for (const step of list) {
      const policy = kvm.get(step.policy);
      if (policy === undefined) continue;
      policy.used = true;
      handled.add(step.el);
      report.add(
        file,
        step.line,
        "unsupported",
        `step ${step.policy} in the ${where} response: the filter runs operations on the request only; not converted`,
      );
    }
  };

  const endpoints = inFolder("proxies").filter((p) => p.root.name === "ProxyEndpoint");
  for (const { file, root } of endpoints) {
    const endpoint = root.attrs.name ?? basename(file.path, ".xml");
    const basePath = child(child(root, "HTTPProxyConnection") ?? root, "BasePath")?.text || "/";
    const pre = opsOf(steps(child(root, "PreFlow"), "Request"), file.display, `${endpoint} PreFlow`);
    const post = opsOf(steps(child(root, "PostFlow"), "Request"), file.display, `${endpoint} PostFlow`);
    reportResponse(steps(child(root, "PreFlow"), "Response"), file.display, `${endpoint} PreFlow`);
    reportResponse(steps(child(root, "PostFlow"), "Response"), file.display, `${endpoint} PostFlow`);
    for (const flow of children(child(root, "Flows") ?? root, "Flow")) {
      const name = `${endpoint}.${flow.attrs.name ?? `flow-line-${flow.line}`}`;
      const condition = child(flow, "Condition");
      const own = steps(flow, "Request");
      reportResponse(steps(flow, "Response"), file.display, `flow ${name}`);
      const hasKvm = own.some((s) => kvm.has(s.policy));
      const match = conditionToMatch(condition?.text ?? null, basePath);
      if ("reason" in match) {
        if (hasKvm) {
          report.add(
            file.display,
            (condition ?? flow).line,
            "unsupported",
            `flow ${name}: condition not routable (${match.reason}); its KVM steps are not converted`,
          );
          for (const s of own) {
            if (!kvm.has(s.policy)) continue;
            kvm.get(s.policy)!.used = true;
            handled.add(s.el);
          }
        } else {
          report.add(
            file.display,
            (condition ?? flow).line,
            "note",
            `flow ${name} has no KVM steps and a condition with no route match (${match.reason}): its requests take the ${endpoint} route`,
          );
        }
        continue;
      }
      const ops = [...pre, ...opsOf(own, file.display, `flow ${name}`), ...post];
      envoyRoutes.push({ name, match });
      if (ops.length > 0) routes[name] = ops;
      report.add(
        file.display,
        flow.line,
        "converted",
        `flow ${name} → Envoy route ${name} (${JSON.stringify(match)}), ${count(ops.length, "operation")}`,
      );
    }
    envoyRoutes.push({ name: endpoint, match: conditionToMatch(null, basePath) as Record<string, unknown> });
    if (pre.length + post.length > 0) routes[endpoint] = [...pre, ...post];
    report.add(
      file.display,
      root.line,
      "converted",
      `ProxyEndpoint ${endpoint} → Envoy route ${endpoint} (prefix ${basePath}), ${count(pre.length + post.length, "operation")}`,
    );
  }

  // KVM steps anywhere else: target endpoint flows, fault rules, PostClientFlow.
  const leftovers = (el: XmlElement, file: string, context: string[]) => {
    for (const c of el.children) {
      const here = [...context, c.attrs.name === undefined ? c.name : `${c.name} ${c.attrs.name}`];
      if (c.name === "Step" && !handled.has(c)) {
        const policy = kvm.get(child(c, "Name")?.text ?? "");
        if (policy === undefined) continue;
        policy.used = true;
        report.add(
          file,
          c.line,
          "unsupported",
          `step ${policy.name} in ${context.join(" / ")}: only proxy endpoint request flows are converted`,
        );
      } else leftovers(c, file, here);
    }
  };
  for (const { file, root } of [...endpoints, ...inFolder("targets")]) {
    leftovers(root, file.display, [
      root.attrs.name === undefined ? root.name : `${root.name} ${root.attrs.name}`,
    ]);
  }
  for (const p of kvm.values()) {
    if (!p.used && p.ops.length > 0) {
      report.add(
        p.file,
        p.line,
        "note",
        `policy ${p.name} is attached to no proxy endpoint flow: it never runs, not converted`,
      );
    }
  }
  // One TargetEndpoint with a URL: every route sends there, so the envoy.yaml fragment can define the cluster.
  const targets = inFolder("targets").filter((p) => p.root.name === "TargetEndpoint");
  const connection = targets.length === 1 ? child(targets[0].root, "HTTPTargetConnection") : undefined;
  const url = connection === undefined ? undefined : child(connection, "URL")?.text;
  const upstreamUrl = url !== undefined && /^https?:\/\//.test(url) ? url : undefined;
  return { config: { routes }, envoyRoutes, imports, report, upstreamUrl };
}
