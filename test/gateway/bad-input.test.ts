// The bad-input campaign through the local gateway on envoy/envoy.yaml (both policies, the real KVM
// service behind the cluster ones): generated requests over a plain socket — headers huge, many, with odd
// bytes or duplicated; paths and query strings with bad percent-encoding and raw bytes; bodies huge, not
// JSON, nested deep, not UTF-8 — after the corpus in test/corpus/gateway/. Every request is answered
// within the bound, no VM fails, nothing is a 5xx, and every 4xx carries a body naming the problem.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createEchoServer } from "../../gateway/echo-upstream.ts";
import { loadGatewayConfig } from "../../gateway/config.ts";
import { startGateway, type RunningGateway } from "../../gateway/server.ts";
import { startService, type RunningService } from "../e2e/helpers.ts";
import { CAMPAIGN_SEED, Gen, campaignSize, keepFailure, readCorpus } from "../corpus/generator.ts";
import { exchange, hostileHeaders, serialize, type RawAnswer } from "../corpus/raw-http.ts";
import { recordReliability } from "../reliability/record.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
// Far above any answer the gateway gives (the callouts' timeout is 1 s): reaching it is a hang.
const BOUND_MS = 10_000;
const REQUESTS = campaignSize(300, 5000);

let service: RunningService;
let echo: Server;
let gateway: RunningGateway;
let port: number;
const logs: string[] = [];

before(async () => {
  // A value limit below the filter's 1 MiB: the service refuses values the filter lets through.
  service = await startService({ KVM_MAX_VALUE_BYTES: "4096" });
  echo = createEchoServer();
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  gateway = await startGateway(loadGatewayConfig(`${ROOT}envoy/envoy.yaml`, {}), {
    clusters: { upstream: `127.0.0.1:${(echo.address() as AddressInfo).port}`, kvm_service: service.address },
    listen: { ingress: "127.0.0.1:0" },
    files: { "/etc/envoy/kvm_filter.wasm": `${ROOT}build/kvm_filter.wasm` },
    log: (line) => logs.push(line),
  });
  port = Number(new URL(gateway.urls.ingress).port);
});
after(async () => {
  await gateway?.stop();
  echo?.closeAllConnections();
  await new Promise((resolve) => echo?.close(resolve));
  await service?.close();
});

const INPUT_HEADERS = ["x-tenant", "idempotency-key", "x-user", "content-type"];
const ROUTES: [string, string][] = [
  ["PUT", "/tenants/"],
  ["DELETE", "/tenants/"],
  ["GET", "/orders"],
  ["POST", "/orders"],
  ["GET", "/kong/"],
  ["GET", "/checkout"],
  ["PUT", "/profiles/"],
  ["GET", "/profiles/"],
];

function generated(g: Gen): Buffer {
  const [method, prefix] = g.oneIn(20) ? [g.pick(["FROB", "get", "P UT", ""]), "/"] : g.pick(ROUTES);
  let target = prefix + g.ascii(g.int(12)).replace(/[ #?%]/g, "");
  switch (g.int(8)) {
    case 0:
      target += g.badPercent() + g.ascii(3).replace(/ /g, "");
      break;
    case 1:
      target += "?" + ["user", "k", "", "&", "="].map((k) => `${k}=${g.badPercent()}`).join("&");
      break;
    case 2:
      target += "/../../" + "a/".repeat(g.int(2000));
      break;
    case 3:
      target = g.pick(["*", "http://evil.example.com/", "//x", "/%00", ""]);
      break;
    case 4:
      target += "?" + "&".repeat(g.int(50)) + "x=" + "%FF".repeat(g.int(100));
      break;
    default:
      break;
  }
  const body = g.oneIn(3)
    ? undefined
    : g.oneIn(12)
      ? Buffer.alloc(g.pick([1024 * 1024 - 10, 1024 * 1024 + 10, 3 * 1024 * 1024]), "a")
      : g.jsonish();
  const bytes = serialize({
    method,
    target,
    headers: hostileHeaders(g, INPUT_HEADERS),
    body,
    chunked: body !== undefined && g.oneIn(3),
  });
  // Raw bytes in the request line: Node's parser must refuse them, the gateway must say so.
  if (g.oneIn(25)) bytes[method.length + 2] = g.pick([0x00, 0x7f, 0xff, 0x0a]);
  return bytes;
}

/** Why an answer is not acceptable, or null. */
function problem(answer: RawAnswer): string | null {
  if (answer.status === -1) return `no answer within ${BOUND_MS} ms`;
  if (answer.status === 0) return "the connection closed without an answer";
  if (answer.status >= 500) return `a ${answer.status}: ${answer.body.toString("latin1").slice(0, 200)}`;
  if (answer.status >= 400) {
    const text = answer.body.toString("utf8");
    if (/application\/json/i.test(answer.head)) {
      const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
      if (typeof parsed.error !== "string" || typeof parsed.message !== "string" || parsed.message === "")
        return `a ${answer.status} without {error, message}: ${text.slice(0, 200)}`;
    } else if (text.trim().length < 5) {
      return `a ${answer.status} whose body names no problem: ${JSON.stringify(text)}`;
    }
  }
  return null;
}

async function campaign(inputs: { name: string; bytes: Buffer }[]): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  for (const input of inputs) {
    const answer = await exchange(port, input.bytes, BOUND_MS);
    const why = problem(answer);
    if (why !== null)
      assert.fail(`${input.name}: ${why} (input in ${keepFailure("gateway", input.name, input.bytes)})`);
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
  }
  // No VM of any filter failed (a trap fails the VM), and the gateway is still whole: a plain request
  // goes through the filter.
  for (const [name, plugin] of gateway.plugins)
    assert.deepEqual(
      plugin.workers.map((w) => w.failed),
      plugin.workers.map(() => false),
      `a VM of ${name} failed`,
    );
  const plain = await exchange(
    port,
    serialize({
      method: "GET",
      target: "/orders",
      headers: [
        ["host", "a"],
        ["x-tenant", "acme"],
      ],
    }),
    BOUND_MS,
  );
  assert.equal(plain.status, 200, plain.head);
  assert.deepEqual(
    logs.filter((l) => /^gateway: (?!refused a malformed request)|trap|failed/i.test(l)),
    [],
  );
  return statuses;
}

describe("bad input through the gateway", () => {
  it("replays test/corpus/gateway/", async () => {
    const corpus = readCorpus("gateway");
    await campaign(corpus);
    recordReliability({
      area: "bad input",
      name: "gateway: corpus of requests that once broke something",
      cases: corpus.length,
      result: "0 traps, 0 hangs, 0 5xx, every 4xx names the problem",
    });
  });

  it(`answers ${REQUESTS} generated requests (seed ${CAMPAIGN_SEED})`, async () => {
    const g = new Gen(CAMPAIGN_SEED);
    const inputs = Array.from({ length: REQUESTS }, (_, i) => ({
      name: `request ${i}`,
      bytes: generated(g),
    }));
    const statuses = await campaign(inputs);
    // The generator reaches both the upstream and the error answers.
    assert.ok((statuses.get(200) ?? 0) > REQUESTS / 10, JSON.stringify([...statuses]));
    assert.ok((statuses.get(400) ?? 0) > REQUESTS / 10, JSON.stringify([...statuses]));
    recordReliability({
      area: "bad input",
      name: "gateway: generated headers, paths, query strings, bodies, sizes (raw sockets)",
      cases: REQUESTS,
      result: "0 traps, 0 hangs, 0 5xx, every 4xx names the problem",
    });
  });
});
