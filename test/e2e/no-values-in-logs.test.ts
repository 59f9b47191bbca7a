// Values never reach the logs, the error bodies or the metrics. A full run — the local gateway on
// envoy/envoy.yaml (the filter on both policies), the KVM service behind it on its own database — writes
// distinctive values through every path, successes and failures alike, while every log line of every
// component is captured: the service's logger at trace level, the gateway's access log, every wasm log
// line at every level. Then none of the values (nor their base64 or hex) may appear in those lines, in the
// body of any error answer, in the service's /metrics or in the filter's stats.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { createEchoServer } from "../../gateway/echo-upstream.ts";
import { loadGatewayConfig } from "../../gateway/config.ts";
import { startGateway, type RunningGateway } from "../../gateway/server.ts";
import { recordReliability } from "../reliability/record.ts";
import { createTestDatabase, startTestApp, type TestApp, type TestDatabase } from "../service/helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAX_VALUE_BYTES = 4096;

const serviceLines: string[] = [];
const gatewayLines: string[] = [];
let db: TestDatabase;
let service: TestApp;
let kvm: string;
let echo: Server;
let gateway: RunningGateway;
let ingress: string;

before(async () => {
  db = await createTestDatabase();
  const sink = new Writable({
    write(chunk, _encoding, done) {
      serviceLines.push(String(chunk));
      done();
    },
  });
  service = await startTestApp(
    db.url,
    { KVM_MAX_VALUE_BYTES: String(MAX_VALUE_BYTES) },
    { logger: { level: "trace", stream: sink } },
  );
  await service.app.listen({ host: "127.0.0.1", port: 0 });
  kvm = `127.0.0.1:${(service.app.server.address() as AddressInfo).port}`;
  echo = createEchoServer();
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  gateway = await startGateway(loadGatewayConfig(`${ROOT}envoy/envoy.yaml`, {}), {
    clusters: { upstream: `127.0.0.1:${(echo.address() as AddressInfo).port}`, kvm_service: kvm },
    listen: { ingress: "127.0.0.1:0" },
    files: { "/etc/envoy/kvm_filter.wasm": `${ROOT}build/kvm_filter.wasm` },
    log: (line) => gatewayLines.push(line),
    wasmLogLevel: 0,
  });
  ingress = gateway.urls.ingress;
});
after(async () => {
  await gateway?.stop();
  echo?.closeAllConnections();
  await new Promise((resolve) => echo?.close(resolve));
  await service?.close();
  await db?.drop();
});

// A value nothing else in a run contains: a fixed prefix no log line has, then random hex.
const written: string[] = [];
function value(): string {
  const v = `Vq${randomBytes(6).toString("hex")}`;
  written.push(v);
  return v;
}

interface Answer {
  what: string;
  status: number;
  body: string;
}
const answers: Answer[] = [];

async function call(what: string, url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const answer = { what, status: res.status, body: await res.text() };
  answers.push(answer);
  return answer;
}

const json = { "content-type": "application/json" };

describe("values never in logs, error bodies or metric labels", () => {
  it("a full run through the gateway and the service leaves no value it wrote anywhere but in the data", async () => {
    const g = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
      call(`gateway ${init.method ?? "GET"} ${path}`, `${ingress}${path}`, init);
    const s = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
      call(`service ${init.method ?? "GET"} ${path}`, `http://${kvm}${path}`, init);

    // The filter, local policy: a put, the reads, a put whose value is not text, a body that is not JSON.
    const plan = value();
    assert.equal(
      (
        await g("/tenants/acme", {
          method: "PUT",
          headers: { "x-tenant": "acme" },
          body: JSON.stringify({ plan }),
        })
      ).status,
      200,
    );
    assert.match((await g("/orders", { headers: { "x-tenant": "acme" } })).body, new RegExp(plan));
    assert.equal(
      (
        await g("/tenants/b", {
          method: "PUT",
          headers: { "x-tenant": "b" },
          body: `{"plan":"${value()}\\ud800"}`,
        })
      ).status,
      400,
    );
    assert.equal(
      (await g("/tenants/c", { method: "PUT", headers: { "x-tenant": "c" }, body: `{"plan":"${value()}"` }))
        .status,
      400,
    );
    // override: false on a key that exists, and an idempotent replay.
    const order = value();
    for (let i = 0; i < 2; i++)
      await g("/orders", {
        method: "POST",
        headers: { "idempotency-key": "k-1" },
        body: JSON.stringify({ order: { id: order } }),
      });
    await g("/orders", {
      method: "POST",
      headers: { "idempotency-key": "k-1" },
      body: JSON.stringify({ order: { id: value() } }),
    });

    // The filter, cluster policy: a put and a get through the service, a value over the service's limit,
    // a value the service refuses, a read with the feature flag's default.
    const email = value();
    assert.equal(
      (
        await g("/profiles/u1", {
          method: "PUT",
          headers: { "x-user": "u1" },
          body: JSON.stringify({ contact: { email } }),
        })
      ).status,
      200,
    );
    const read = await fetch(`${ingress}/profiles/u1`, { headers: { "x-user": "u1" } });
    assert.equal(read.headers.get("x-profile-email"), email);
    await read.text();
    const huge = value().repeat(MAX_VALUE_BYTES / 10);
    assert.ok(
      (
        await g("/profiles/u2", {
          method: "PUT",
          headers: { "x-user": "u2" },
          body: JSON.stringify({ contact: { email: huge } }),
        })
      ).status >= 400,
    );
    await g("/checkout", { headers: { "x-tenant": "acme" } });

    // The service directly: data plane and admin, each success and each refusal.
    assert.equal((await s("/v1/kvms/direct/entries/k", { method: "PUT", body: value() })).status, 201);
    assert.equal(
      (
        await s("/v1/kvms/direct/entries/k", {
          method: "PUT",
          headers: { "if-match": '"999"' },
          body: value(),
        })
      ).status,
      412,
    );
    assert.equal(
      (
        await s("/v1/kvms/direct/entries/k2", {
          method: "PUT",
          headers: { "if-none-match": "*" },
          body: value(),
        })
      ).status,
      201,
    );
    assert.equal(
      (
        await s("/v1/kvms/direct/entries/k2", {
          method: "PUT",
          headers: { "if-none-match": "*" },
          body: value(),
        })
      ).status,
      412,
    );
    assert.equal(
      (await s("/v1/kvms/direct/entries/k", { method: "PUT", headers: { "x-kvm-ttl": "x" }, body: value() }))
        .status,
      400,
    );
    assert.equal(
      (await s("/v1/kvms/direct/entries/k", { method: "PUT", body: value().repeat(MAX_VALUE_BYTES) })).status,
      413,
    );
    assert.equal(
      (
        await s("/admin/v1/kvms/adm/entries/k", {
          method: "PUT",
          headers: json,
          body: JSON.stringify({ value: value() }),
        })
      ).status,
      201,
    );
    assert.equal(
      (
        await s("/admin/v1/kvms/adm/entries/k", {
          method: "PUT",
          headers: json,
          body: JSON.stringify({ value: value(), ttl: "x" }),
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await s("/admin/v1/kvms/adm/entries/k", {
          method: "PUT",
          headers: json,
          body: `{"value":"${value()}" x}`,
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await s("/admin/v1/kvms/adm/entries/k", {
          method: "PUT",
          headers: json,
          body: `{"value":"${value()}\\ud800"}`,
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await s("/admin/v1/kvms/adm/entries/k", {
          method: "PUT",
          headers: json,
          body: JSON.stringify({ value: value(), value_base64: "eA==" }),
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await s("/admin/v1/kvms/adm/entries/k", {
          method: "PUT",
          headers: { "content-type": "text/plain" },
          body: JSON.stringify({ value: value() }),
        })
      ).status,
      415,
    );
    const entries = [
      { name: "i1", value: value() },
      { name: "i2", value: value(), expires_at: "soon" },
    ];
    assert.equal(
      (
        await s("/admin/v1/kvms/imp/import", {
          method: "POST",
          headers: json,
          body: JSON.stringify({ keyValueEntries: entries }),
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await s("/admin/v1/kvms/imp/import", {
          method: "POST",
          headers: json,
          body: `{"keyValueEntries":[{"name":"i3","value":"${value()}"}`,
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await s("/admin/v1/kvms/imp/import", {
          method: "POST",
          headers: json,
          body: JSON.stringify({ keyValueEntries: [{ name: "i4", value: value() }] }),
        })
      ).status,
      200,
    );
    assert.equal((await s("/admin/v1/kvms/imp/export")).status, 200);
    assert.equal((await s("/admin/v1/kvms/adm/entries/k")).status, 200);
    assert.equal((await s("/v1/kvms/direct/entries/k")).status, 200);

    // Everything a value must not be in.
    const metrics = await (await fetch(`http://${kvm}/metrics`)).text();
    const stats = [...gateway.plugins.values()].flatMap((p) => p.getMetrics().map((m) => m.name));
    const places: [string, string][] = [
      ["service log", serviceLines.join("")],
      ["gateway log (access log and wasm logs)", gatewayLines.join("\n")],
      ...answers
        .filter((a) => a.status >= 400)
        .map((a): [string, string] => [`error body of ${a.what} (${a.status})`, a.body]),
      ["service /metrics", metrics],
      ["filter stats", stats.join("\n")],
    ];
    // The capture works: each place holds what it should.
    assert.ok(serviceLines.length > 20 && gatewayLines.some((l) => l.includes("wasm log")), "logs captured");
    assert.ok(
      answers.filter((a) => a.status >= 400).length >= 12 && metrics.includes("kvm_") && stats.length > 0,
    );
    const leaks: string[] = [];
    for (const v of written) {
      const forms = [v, Buffer.from(v).toString("base64").slice(0, 12), Buffer.from(v).toString("hex")];
      for (const [place, text] of places)
        if (forms.some((form) => text.includes(form)))
          leaks.push(`${v} in the ${place}: ${excerpt(text, v)}`);
    }
    assert.deepEqual(leaks, []);
    recordReliability({
      area: "security",
      name: "values never in logs, error bodies or metric labels (full run: gateway, filter on both policies, service)",
      cases: written.length,
      result: `0 of ${written.length} values found in ${places.length} captured places`,
    });
  });
});

function excerpt(text: string, v: string): string {
  const at = text.indexOf(v);
  return JSON.stringify(text.slice(Math.max(0, at - 80), at + 40));
}
