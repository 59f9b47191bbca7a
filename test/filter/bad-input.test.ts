// The bad-input campaign on the host directly, where the gateway cannot reach: plugin configurations
// (the valid ones of the shared table, mutated field by field and byte by byte) and the KVM service's
// answers to the cluster policy's callouts (status, headers and body mutated, or the connection failing).
// A configuration is accepted, or refused at configure time with one critical line naming the field —
// never a trap — and the JSON Schema gives the same verdict. A callout answer never traps or hangs the
// VM; the request goes on or gets a JSON {error, message} naming the problem. test/corpus/config/ and
// test/corpus/callout/ are replayed first.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import { PluginStartError, type ClusterAnswer } from "../../host/index.ts";
import { SCHEMA_PATH } from "../../scripts/gen-config-reference.ts";
import { CAMPAIGN_SEED, Gen, campaignSize, keepFailure, readCorpus } from "../corpus/generator.ts";
import { recordReliability } from "../reliability/record.ts";
import { configCases } from "./config-cases.ts";
import { headerOf, startKvm } from "./support.ts";

const CRITICAL = 5;
const BOUND_MS = 10_000;
const validate = new Ajv().compile(JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as object);

function schemaAccepts(text: Buffer): boolean {
  try {
    return validate(JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(text)));
  } catch {
    return false;
  }
}

// Values of every JSON type, and strings that are not quite what a field wants.
function oddValue(g: Gen): unknown {
  return g.pick<() => unknown>([
    () => null,
    () => true,
    () => g.int(5) - 2,
    () => 1.5,
    () => 1e300,
    () => -0,
    () => 2 ** 53 + 1,
    () => "",
    () => g.ascii(g.int(20)),
    () => "x".repeat(g.pick([129, 300, 70_000])),
    () => "\ud800",
    () => "a\u0000b",
    () => "a.b..c",
    () => "header",
    () => "cluster",
    () => [],
    () => [g.ascii(3)],
    () => ({}),
    () => ({ source_type: "literal", source_name: g.ascii(3) }),
  ])();
}

function mutate(g: Gen, value: unknown, depth = 0): unknown {
  if (Array.isArray(value)) {
    const out = value.map((v) => (g.oneIn(2) ? mutate(g, v, depth + 1) : v));
    if (g.oneIn(6)) out.push(g.oneIn(2) ? structuredClone(out[0]) : oddValue(g));
    if (g.oneIn(8)) out.splice(g.int(out.length + 1), 1);
    return out;
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(out);
    if (keys.length === 0) return { [g.token(6)]: oddValue(g) };
    const changes = 1 + g.int(2);
    for (let i = 0; i < changes; i++) {
      const key = g.pick(keys);
      switch (g.int(6)) {
        case 0:
          delete out[key];
          break;
        case 1:
          out[g.pick([g.token(6), key.toUpperCase(), `${key} `, "__proto__"])] = oddValue(g);
          break;
        default:
          out[key] = depth < 4 && g.oneIn(2) ? mutate(g, out[key], depth + 1) : oddValue(g);
      }
    }
    return out;
  }
  return oddValue(g);
}

// Text-level damage the JSON parser has to survive.
function damage(g: Gen, text: Buffer): Buffer {
  switch (g.int(5)) {
    case 0:
      return text.subarray(0, g.int(text.length));
    case 1: {
      const at = g.int(text.length);
      return Buffer.concat([text.subarray(0, at), g.invalidUtf8(), text.subarray(at)]);
    }
    case 2:
      return Buffer.from("[".repeat(g.int(100_000)));
    case 3:
      return Buffer.concat([Buffer.from('{"operations":'), Buffer.from('{"a":'.repeat(g.int(20_000))), text]);
    default: {
      const copy = Buffer.from(text);
      copy[g.int(copy.length)] = g.int(256);
      return copy;
    }
  }
}

const validConfigs = configCases
  .filter((c) => c.error === null)
  .map((c) => (typeof c.config === "string" ? c.config : JSON.stringify(c.config)));

function generatedConfig(g: Gen): Buffer {
  const base = g.pick(validConfigs);
  if (g.oneIn(5)) return damage(g, Buffer.from(base));
  return Buffer.from(JSON.stringify(mutate(g, JSON.parse(base))));
}

/** Starts the filter on `config`: the verdict, or why it is not acceptable. */
async function configure(config: Buffer): Promise<{ accepted: boolean; problem: string | null }> {
  const critical: string[] = [];
  // The bytes as they are (startKvm would serialize a Buffer as JSON).
  const accepted = await startKvm(null, {
    configuration: config,
    logSink: (level, message) => {
      if (level === CRITICAL) critical.push(message);
    },
  }).then(
    () => true,
    (err: unknown) => {
      if (!(err instanceof PluginStartError)) throw err;
      return false;
    },
  );
  if (accepted)
    return { accepted, problem: critical.length === 0 ? null : `accepted, yet ${critical.join(" | ")}` };
  if (critical.length !== 1 || !/^invalid configuration: \S.*: \S/.test(critical[0]))
    return { accepted, problem: `refused without one clear line: ${JSON.stringify(critical)}` };
  return { accepted, problem: null };
}

async function configCampaign(inputs: { name: string; bytes: Buffer }[]): Promise<number> {
  let refused = 0;
  for (const input of inputs) {
    const { accepted, problem } = await configure(input.bytes);
    let why = problem;
    if (why === null && accepted !== schemaAccepts(input.bytes))
      why = `the filter ${accepted ? "accepts" : "refuses"} what the schema ${accepted ? "refuses" : "accepts"}`;
    if (why !== null)
      assert.fail(`${input.name}: ${why} (input in ${keepFailure("config", input.name, input.bytes)})`);
    if (!accepted) refused++;
  }
  return refused;
}

// The cluster policy on every operation and destination: what each answer meets.
const CLUSTER_CONFIG = {
  operations: [
    ["get", { output_destination_type: "header", output_destination_name: "x-a", cache_ttl: 0 }],
    ["get", { output_destination_type: "body", output_destination_name: "a.b", default_value: "d" }],
    ["get", { output_destination_type: "shared_context", output_destination_name: "s", cache_ttl: 5 }],
    ["get", { output_destination_type: "response_header", output_destination_name: "x-r" }],
    ["put", { value_source_type: "literal", value_source_name: "v", override: false, ttl: 60 }],
    ["put", { value_source_type: "body", value_source_name: "" }],
    ["delete", {}],
  ].map(([operation_type, fields], i) => ({
    policy: "cluster",
    kvm_name: "campaign",
    operation_type,
    key_source_type: "header",
    key_source_name: "x-k",
    on_error_continue: i % 2 === 0,
    ...(fields as object),
  })),
};

function calloutAnswer(g: Gen): ClusterAnswer {
  if (g.oneIn(8))
    return g.pick(["timeout", "connect_failure", "reset", "protocol_error", "reset_after_headers"] as const);
  const status = g.pick([
    "200",
    "201",
    "204",
    "304",
    "404",
    "412",
    "413",
    "400",
    "500",
    "503",
    "100",
    "999",
    "abc",
    "",
    "-1",
    "2000000000",
  ]);
  const headers: [string, string][] = g.oneIn(10) ? [] : [[":status", status]];
  if (g.oneIn(2)) headers.push(["etag", g.pick(['"1"', "", 'W/"x"', '"', g.ascii(g.int(300))])]);
  if (g.oneIn(4)) headers.push(["content-length", g.pick(["0", "-1", "abc", "99999999999"])]);
  if (g.oneIn(6)) headers.push(["x-kvm-expires-at", g.pick(["", "abc", "-1", "1e309", String(2 ** 64)])]);
  if (g.oneIn(8)) for (let i = 0; i < 500; i++) headers.push([`x-${i}`, g.ascii(10)]);
  if (g.oneIn(8)) headers.push(["x-huge", "h".repeat(64 * 1024)]);
  const body = g.oneIn(3)
    ? undefined
    : g.oneIn(15)
      ? Buffer.alloc(g.pick([1024 * 1024, 3 * 1024 * 1024]), "b")
      : g.oneIn(2)
        ? g.jsonish()
        : Buffer.concat([Buffer.from("v"), g.invalidUtf8()]);
  return { headers, body };
}

function timeout(ms: number): Promise<"hang"> {
  return new Promise((resolve) => setTimeout(() => resolve("hang"), ms).unref());
}

async function calloutCampaign(
  answers: { name: string; answer: () => ClusterAnswer }[],
): Promise<Map<number, number>> {
  let next: () => ClusterAnswer = () => ({ headers: [[":status", "404"]] });
  const plugin = await startKvm(CLUSTER_CONFIG, { clusters: { kvm_service: () => next() } });
  const worker = plugin.worker();
  const statuses = new Map<number, number>();
  for (const { name, answer } of answers) {
    next = answer;
    const res = await Promise.race([
      worker.http(
        {
          method: "POST",
          path: "/",
          headers: [["x-k", name]],
          body: '{"a":{"b":"c"}}',
        },
        () => ({ status: 200, body: "upstream" }),
      ),
      timeout(BOUND_MS),
    ]);
    const fail = (why: string) => assert.fail(`${name}: ${why}`);
    if (res === "hang") fail(`no answer within ${BOUND_MS} ms`);
    else {
      if (worker.failed) fail("the VM failed");
      if (res.status !== 200) {
        const type = headerOf(res.headers, "content-type");
        const body = JSON.parse(res.body.toString("utf8")) as { error?: unknown; message?: unknown };
        if (type !== "application/json" || typeof body.error !== "string" || typeof body.message !== "string")
          fail(`a ${res.status} that names no problem: ${res.body.toString().slice(0, 200)}`);
      }
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  }
  return statuses;
}

const CONFIGS = campaignSize(400, 5000);
const ANSWERS = campaignSize(600, 10_000);

describe("bad input on the host", () => {
  it("replays test/corpus/config/", async () => {
    const corpus = readCorpus("config");
    await configCampaign(corpus);
    recordReliability({
      area: "bad input",
      name: "filter: corpus of configurations that once broke something",
      cases: corpus.length,
      result: "0 traps; each refused with one line naming the field",
    });
  });

  it(`${CONFIGS} mutated configurations (seed ${CAMPAIGN_SEED}): refused at configure time, as the schema says`, async () => {
    const g = new Gen(CAMPAIGN_SEED);
    const inputs = Array.from({ length: CONFIGS }, (_, i) => ({
      name: `config ${i}`,
      bytes: generatedConfig(g),
    }));
    const refused = await configCampaign(inputs);
    assert.ok(refused > CONFIGS / 2 && refused < CONFIGS, `${refused} of ${CONFIGS} refused`);
    recordReliability({
      area: "bad input",
      name: "filter: generated and mutated plugin configurations",
      cases: CONFIGS,
      result: "0 traps; each refused with one line naming the field; same verdict as the schema",
    });
  });

  it("replays test/corpus/callout/", async () => {
    const corpus = readCorpus("callout");
    await calloutCampaign(
      corpus.map(({ name, bytes }) => ({
        name,
        answer: () => JSON.parse(bytes.toString("utf8")) as ClusterAnswer,
      })),
    );
    recordReliability({
      area: "bad input",
      name: "filter: corpus of KVM service answers that once broke something",
      cases: corpus.length,
      result: "0 traps, 0 hangs, every error a JSON {error, message}",
    });
  });

  it(`${ANSWERS} mutated KVM service answers to callouts (seed ${CAMPAIGN_SEED})`, async () => {
    const g = new Gen(CAMPAIGN_SEED);
    const answers = Array.from({ length: ANSWERS }, (_, i) => {
      const answer = calloutAnswer(g);
      return { name: `answer ${i}: ${JSON.stringify(answer).slice(0, 200)}`, answer: () => answer };
    });
    const statuses = await calloutCampaign(answers);
    assert.ok((statuses.get(200) ?? 0) > 0 && statuses.size > 1, JSON.stringify([...statuses]));
    recordReliability({
      area: "bad input",
      name: "filter: mutated KVM service answers (status, headers, bodies, failures)",
      cases: ANSWERS,
      result: "0 traps, 0 hangs, every error a JSON {error, message}",
    });
  });
});
