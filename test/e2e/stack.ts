// The stack every e2e file talks to, over plain HTTP only. Environment:
//   GATEWAY_URL      the gateway or Envoy listener (scripts/sandbox-e2e.sh: Envoy on :10000);
//   KVM_URL          the KVM service, for the admin API (set-up and inspection);
//   KVM_ADMIN_TOKEN  its admin token (none when the service runs in insecure local mode).
// Without GATEWAY_URL (`npm test`), `useStack()` starts the local gateway on envoy/envoy.yaml with the
// echo upstream, the KVM service in-process on its own database (unless KVM_URL names one), and the
// cluster kvm_service_down on a loopback port nothing listens on — as under Docker, where it names a
// port the kvm-service container does not serve. So the very same files run against both.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createEchoServer } from "../../gateway/echo-upstream.ts";
import { loadGatewayConfig } from "../../gateway/config.ts";
import { startGateway, type RunningGateway } from "../../gateway/server.ts";
import { closedAddress, startService, type RunningService } from "./helpers.ts";

let gateway = process.env.GATEWAY_URL;
let kvm = process.env.KVM_URL ?? "http://127.0.0.1:8081";

/** Registers the hooks that start (and stop) the local stack when GATEWAY_URL is not set. */
export function useStack(): void {
  let local: { echo: Server; gateway: RunningGateway } | null = null;
  let service: RunningService | null = null;
  before(async () => {
    if (gateway !== undefined) return;
    if (process.env.KVM_URL === undefined) {
      service = await startService();
      kvm = `http://${service.address}`;
    }
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const echo = createEchoServer();
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
    const running = await startGateway(loadGatewayConfig(`${root}envoy/envoy.yaml`), {
      clusters: {
        upstream: `127.0.0.1:${(echo.address() as AddressInfo).port}`,
        kvm_service: new URL(kvm).host,
        kvm_service_down: await closedAddress(),
      },
      listen: { ingress: "127.0.0.1:0" },
      files: { "/etc/envoy/kvm_filter.wasm": `${root}build/kvm_filter.wasm` },
      log: () => {},
    });
    local = { echo, gateway: running };
    gateway = running.urls.ingress;
  });
  after(async () => {
    if (local !== null) {
      await local.gateway.stop();
      local.echo.closeAllConnections();
      await new Promise((resolve) => local!.echo.close(resolve));
    }
    await service?.close();
  });
}

/** A value unique to this run, so the suite can run again against the same stack. */
export const run = `${process.pid}-${Date.now()}`;

/** The echo upstream answers `METHOD path`, then `name: value` lines, a blank line and the body. */
export function echoed(text: string, name: string): string | undefined {
  const head = text.split("\n\n", 1)[0].split("\n").slice(1);
  return head.find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2);
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** One request through the gateway (or Envoy). */
export async function call(
  path: string,
  init: RequestInit & { headers?: Record<string, string> } = {},
): Promise<Answer> {
  const response = await fetch(`${gateway}${path}`, init);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

async function admin(method: string, kvmName: string, key: string, value?: string): Promise<Response> {
  return fetch(`${kvm}/admin/v1/kvms/${kvmName}/entries/${encodeURIComponent(key)}`, {
    method,
    headers: {
      authorization: `Bearer ${process.env.KVM_ADMIN_TOKEN ?? ""}`,
      "content-type": "application/json",
    },
    body: value === undefined ? undefined : JSON.stringify({ value }),
  });
}

/** Stores an entry in the KVM service through its admin API. */
export async function adminPut(kvmName: string, key: string, value: string): Promise<void> {
  const response = await admin("PUT", kvmName, key, value);
  assert.ok(response.ok, `admin put ${kvmName}/${key}: ${response.status} ${await response.text()}`);
}

/** An entry's value as the KVM service's admin API has it, or undefined when it has none. */
export async function adminGet(kvmName: string, key: string): Promise<string | undefined> {
  const response = await admin("GET", kvmName, key);
  if (response.status === 404) return undefined;
  const body = await response.text();
  assert.ok(response.ok, `admin get ${kvmName}/${key}: ${response.status} ${body}`);
  return (JSON.parse(body) as { value: string }).value;
}

/** Asks again every 200 ms until `done` holds for the answer, for at most `seconds`. */
export async function eventually(
  ask: () => Promise<Answer>,
  done: (answer: Answer) => boolean,
  seconds: number,
): Promise<Answer> {
  let answer = await ask();
  for (let waited = 0; !done(answer) && waited < seconds * 1000; waited += 200) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    answer = await ask();
  }
  return answer;
}
