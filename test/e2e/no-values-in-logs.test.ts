// Values never reach the logs, the error bodies or the metrics. A full run — the local gateway on
// envoy/envoy.yaml (the filter on both policies), the KVM service behind it on its own database — writes
// distinctive values through every path, successes and failures alike, while every log line of every
// component is captured: the service's logger at trace level, the gateway's access log, every wasm log
// line at every level. Then none of the values (nor their base64 or hex) may appear in those lines, in the
// body of any error answer, in the service's /metrics or in the filter's stats.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createEchoServer } from "../../gateway/echo-upstream.ts";
import { loadGatewayConfig } from "../../gateway/config.ts";
import { startGateway, type RunningGateway } from "../../gateway/server.ts";
import { recordReliability } from "../reliability/record.ts";
import {
  createTestDatabase,
  startTestApp,
  type TestApp,
  type TestDatabase,
  logCapture,
} from "../service/helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAX_VALUE_BYTES = 4096;

interface Stack {
  serviceLines: string[];
  gatewayLines: string[];
  db: TestDatabase;
  service: TestApp;
  kvm: string;
  echo: Server;
  gateway: RunningGateway;
  ingress: string;
}

async function startStack(env: Record<string, string>): Promise<Stack> {
  const serviceLines: string[] = [];
  const gatewayLines: string[] = [];
  const db = await createTestDatabase();
  const { stream: sink } = logCapture(serviceLines);
  const service = await startTestApp(
    db.url,
    { KVM_MAX_VALUE_BYTES: String(MAX_VALUE_BYTES), ...env },
    { logger: { level: "trace", stream: sink } },
  );
  await service.app.listen({ host: "127.0.0.1", port: 0 });
  const kvm = `127.0.0.1:${(service.app.server.address() as AddressInfo).port}`;
  const echo = createEchoServer();
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  const gateway = await startGateway(loadGatewayConfig(`${ROOT}envoy/envoy.yaml`, {}), {
    clusters: { upstream: `127.0.0.1:${(echo.address() as AddressInfo).port}`, kvm_service: kvm },
    listen: { ingress: "127.0.0.1:0" },
    files: { "/etc/envoy/kvm_filter.wasm": `${ROOT}build/kvm_filter.wasm` },
    log: (line) => gatewayLines.push(line),
    wasmLogLevel: 0,
  });
  return { serviceLines, gatewayLines, db, service, kvm, echo, gateway, ingress: gateway.urls.ingress };
}

async function stopStack(stack: Stack): Promise<void> {
  await stack.gateway.stop();
  stack.echo.closeAllConnections();
  await new Promise((resolve) => stack.echo.close(resolve));
  await stack.service.close();
  await stack.db.drop();
}

// A value nothing else in a run contains: a fixed prefix no log line has, then random hex.
function value(): string {
  return `Vq${randomBytes(6).toString("hex")}`;
}

interface Answer {
  what: string;
  status: number;
  headers: Headers;
  body: string;
  /** The values this request wrote. */
  values: string[];
}
const json = { "content-type": "application/json" };
const text = { "content-type": "text/plain" };

/**
 * One request of the run: to the gateway or the service, the status it must get (0: any), the headers,
 * and the body; each `${value}` placeholder in the path or the body becomes a fresh distinctive value.
 */
type Step = [
  to: "gateway" | "service",
  method: string,
  path: string,
  status: number,
  headers: Record<string, string>,
  body?: string,
];

// The filter on the local policy: a put, a read, a value that is not text, a body that is not JSON, a put
// with override: false on a key that exists. On the cluster policy: a put and a read through the service,
// a value over the service's limit, a read that falls back to the default. The service directly: data
// plane and admin, each write succeeding and refused every way it can be.
const v = "${value}";
const STEPS: Step[] = [
  ["gateway", "PUT", "/tenants/acme", 200, { "x-tenant": "acme" }, `{"plan":"${v}"}`],
  ["gateway", "GET", "/orders", 200, { "x-tenant": "acme" }],
  ["gateway", "GET", `/orders?plan=${v}&b=${v}`, 200, { "x-tenant": "acme" }],
  ["gateway", "PUT", "/tenants/b", 400, { "x-tenant": "b" }, `{"plan":"${v}\\ud800"}`],
  ["gateway", "PUT", "/tenants/c", 400, { "x-tenant": "c" }, `{"plan":"${v}"`],
  ["gateway", "POST", "/orders", 0, { "idempotency-key": "k-1" }, `{"order":{"id":"${v}"}}`],
  ["gateway", "POST", "/orders", 0, { "idempotency-key": "k-1" }, `{"order":{"id":"${v}"}}`],
  ["gateway", "PUT", "/profiles/u1", 200, { "x-user": "u1" }, `{"contact":{"email":"${v}"}}`],
  ["gateway", "GET", "/profiles/u1", 200, { "x-user": "u1" }],
  [
    "gateway",
    "PUT",
    "/profiles/u2",
    400,
    { "x-user": "u2" },
    `{"contact":{"email":"${v}${"x".repeat(MAX_VALUE_BYTES)}"}}`,
  ],
  ["gateway", "GET", "/checkout", 200, { "x-tenant": "acme" }],
  ["service", "PUT", "/v1/kvms/direct/entries/k", 201, {}, v],
  ["service", "PUT", "/v1/kvms/direct/entries/k", 412, { "if-match": '"999"' }, v],
  ["service", "PUT", "/v1/kvms/direct/entries/k2", 201, { "if-none-match": "*" }, v],
  ["service", "PUT", "/v1/kvms/direct/entries/k2", 412, { "if-none-match": "*" }, v],
  ["service", "PUT", "/v1/kvms/direct/entries/k", 400, { "x-kvm-ttl": "x" }, v],
  ["service", "PUT", "/v1/kvms/direct/entries/k", 413, {}, `${v}${"x".repeat(MAX_VALUE_BYTES)}`],
  ["service", "GET", "/v1/kvms/direct/entries/k", 200, {}],
  ["service", "PUT", "/admin/v1/kvms/adm/entries/k", 201, json, `{"value":"${v}"}`],
  ["service", "PUT", "/admin/v1/kvms/adm/entries/k", 400, json, `{"value":"${v}","ttl":"x"}`],
  ["service", "PUT", "/admin/v1/kvms/adm/entries/k", 400, json, `{"value":"${v}" x}`],
  ["service", "PUT", "/admin/v1/kvms/adm/entries/k", 400, json, `{"value":"${v}\\ud800"}`],
  ["service", "PUT", "/admin/v1/kvms/adm/entries/k", 400, json, `{"value":"${v}","value_base64":"eA=="}`],
  ["service", "PUT", "/admin/v1/kvms/adm/entries/k", 415, text, `{"value":"${v}"}`],
  ["service", "GET", "/admin/v1/kvms/adm/entries/k", 200, {}],
  [
    "service",
    "POST",
    "/admin/v1/kvms/imp/import",
    400,
    json,
    `{"keyValueEntries":[{"name":"i1","value":"${v}"},{"name":"i2","value":"${v}","expires_at":"soon"}]}`,
  ],
  [
    "service",
    "POST",
    "/admin/v1/kvms/imp/import",
    400,
    json,
    `{"keyValueEntries":[{"name":"i3","value":"${v}"}`,
  ],
  [
    "service",
    "POST",
    "/admin/v1/kvms/imp/import",
    200,
    json,
    `{"keyValueEntries":[{"name":"i4","value":"${v}"}]}`,
  ],
  ["service", "GET", "/admin/v1/kvms/imp/export", 200, {}],
];

async function run(stack: Stack, [to, method, path, status, headers, body]: Step): Promise<Answer> {
  const base = to === "gateway" ? stack.ingress : `http://${stack.kvm}`;
  const values: string[] = [];
  const fresh = (text: string) => text.replaceAll(v, () => values[values.push(value()) - 1]);
  const res = await fetch(`${base}${fresh(path)}`, {
    method,
    headers,
    body: body === undefined ? undefined : fresh(body),
  });
  const what = `${to} ${method} ${path}`;
  const answer = { what, status: res.status, headers: res.headers, body: await res.text(), values };
  if (status !== 0) assert.equal(answer.status, status, `${answer.what}: ${answer.body}`);
  return answer;
}

/** The run, then every place a value must not be in: the leaks found there. */
async function leaksOfRun(
  stack: Stack,
  secrets: string[],
): Promise<{ values: number; places: number; leaks: string[] }> {
  const answers: Answer[] = [];
  for (const step of STEPS) answers.push(await run(stack, step));
  // The values were written: the reads return them.
  assert.ok(answers[1].body.includes(answers[0].values[0]), answers[1].body);
  assert.equal(answers[8].headers.get("x-profile-email"), answers[7].values[0]);

  const metrics = await (await fetch(`http://${stack.kvm}/metrics`)).text();
  const stats = [...stack.gateway.plugins.values()].flatMap((p) => p.getMetrics().map((m) => m.name));
  const errors = answers.filter((a) => a.status >= 400);
  const places: [string, string][] = [
    ["service log", stack.serviceLines.join("")],
    ["gateway log (access log and wasm logs)", stack.gatewayLines.join("\n")],
    ...errors.map((a): [string, string] => [`error body of ${a.what} (${a.status})`, a.body]),
    ["service /metrics", metrics],
    ["filter stats", stats.join("\n")],
  ];
  // The capture works: each place holds what it should.
  assert.ok(stack.serviceLines.length > 20, "service log captured");
  assert.ok(
    stack.gatewayLines.some((l) => l.includes("wasm log")),
    "wasm logs captured",
  );
  assert.ok(errors.length >= 12 && metrics.includes("kvm_") && stats.length > 0);
  const written = answers.flatMap((a) => a.values);
  const leaks: string[] = [];
  for (const v of [...written, ...secrets]) {
    const forms = [v, Buffer.from(v).toString("base64").slice(0, 12), Buffer.from(v).toString("hex")];
    for (const [place, text] of places)
      if (forms.some((form) => text.includes(form))) leaks.push(`${v} in the ${place}: ${excerpt(text, v)}`);
  }
  return { values: written.length, places: places.length, leaks };
}

describe("values never in logs, error bodies or metric labels", () => {
  it("a full run through the gateway and the service, values in plaintext at rest", async () => {
    const stack = await startStack({});
    try {
      const { values, places, leaks } = await leaksOfRun(stack, []);
      assert.deepEqual(leaks, []);
      recordReliability({
        area: "security",
        name: "values never in logs, error bodies or metric labels (full run: gateway, filter on both policies, service)",
        cases: values,
        result: `0 of ${values} values found in ${places} captured places`,
      });
    } finally {
      await stopStack(stack);
    }
  });

  it("the same with values encrypted at rest: no value and no key material anywhere either", async () => {
    const key = randomBytes(32).toString("hex");
    const stack = await startStack({ KVM_ENCRYPTION_KEYS: `k1:${key}`, KVM_ENCRYPTION_ACTIVE_KEY: "k1" });
    try {
      const { values, places, leaks } = await leaksOfRun(stack, [
        key,
        Buffer.from(key, "hex").toString("base64"),
      ]);
      assert.deepEqual(leaks, []);
      // Encryption is on: none of the five entries the run leaves is in plaintext.
      const rows = await stack.service.pool.query(
        "SELECT count(*)::int AS all, count(*) FILTER (WHERE key_id IS NULL)::int AS plain FROM kvm_data",
      );
      assert.ok(rows.rows[0].all === 5 && rows.rows[0].plain === 0, JSON.stringify(rows.rows[0]));
      recordReliability({
        area: "security",
        name: "values and keys never in logs, error bodies or metric labels, values encrypted at rest (same run)",
        cases: values,
        result: `0 of ${values} values and 0 key material found in ${places} captured places`,
      });
    } finally {
      await stopStack(stack);
    }
  });
});

function excerpt(text: string, v: string): string {
  const at = text.indexOf(v);
  return JSON.stringify(text.slice(Math.max(0, at - 80), at + 40));
}
