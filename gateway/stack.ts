// `envoy-kvm start` (what `npm start` runs): the whole stack in one process — the KVM service (with
// the embedded PostgreSQL unless DATABASE_URL is set), the echo upstream and the local gateway on
// envoy/envoy.yaml — then a few curl commands with their answers. SIGTERM / SIGINT stop everything in
// order and the log ends with "envoy-kvm stopped"; the data is kept.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import type { RunningService } from "../service/server.ts";
import type { RunningGateway } from "./server.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const WASM = path.join(ROOT, "build", "kvm_filter.wasm");

/** The commands printed at start, each with the answer it gives on a fresh start (test/service/start.test.ts
 *  runs them): a local put and get, a cluster put and get (profiles.json), a session whose ttl runs out
 *  (sessions.json). The local store lives in the gateway's memory, so a restart is a fresh start for it. */
export function tryLines(gateway: string): { command: string; answer: string }[] {
  return [
    {
      command: `curl -s ${gateway}/orders -H 'x-tenant: acme' | grep x-tenant-plan`,
      answer: "x-tenant-plan: free",
    },
    {
      command: `curl -s -X PUT ${gateway}/tenants/acme -H 'x-tenant: acme' -d '{"plan":"gold"}' | head -1`,
      answer: "PUT /tenants/acme",
    },
    {
      command: `curl -s ${gateway}/orders -H 'x-tenant: acme' | grep x-tenant-plan`,
      answer: "x-tenant-plan: gold",
    },
    {
      command: `curl -s -X PUT ${gateway}/profiles/ann -H 'x-user: ann' -d '{"contact":{"email":"ann@example.com"}}' | head -1`,
      answer: "PUT /profiles/ann",
    },
    {
      command: `curl -s -o /dev/null -D - ${gateway}/profiles/ann -H 'x-user: ann' | grep x-profile-email`,
      answer: "x-profile-email: ann@example.com",
    },
    {
      command: `curl -s -X POST ${gateway}/sessions -H 'x-session: s-1' -H 'x-user: ann' | head -1`,
      answer: "POST /sessions",
    },
    {
      command: `curl -s ${gateway}/whoami -H 'x-session: s-1' | grep x-session-user`,
      answer: "x-session-user: ann",
    },
    {
      command: `sleep 6; curl -s ${gateway}/whoami -H 'x-session: s-1' | grep x-session-user`,
      answer: "x-session-user: anonymous",
    },
  ];
}

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`not a port: ${value}`);
  return n;
};

function listening(server: Server, portNumber: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(portNumber, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

export function startCommand(): Command {
  return new Command("start")
    .description("run the whole local stack: KVM service, echo upstream, gateway on envoy/envoy.yaml")
    .option(
      "--gateway-port <port>",
      "the gateway's port (env GATEWAY_PORT)",
      port,
      port(process.env.GATEWAY_PORT ?? "10000"),
    )
    .option(
      "--upstream-port <port>",
      "the echo upstream's port (env UPSTREAM_PORT)",
      port,
      port(process.env.UPSTREAM_PORT ?? "8080"),
    )
    .option(
      "--config <file>",
      "the Envoy configuration the gateway serves",
      path.join(ROOT, "envoy", "envoy.yaml"),
    )
    .action(async (opts: { gatewayPort: number; upstreamPort: number; config: string }) => {
      const say = (line: string) => process.stdout.write(line + "\n");
      let service: RunningService | null = null;
      let echo: Server | null = null;
      let gateway: RunningGateway | null = null;
      let stoppingSince: number | null = null;
      const stop = async (code: number) => {
        if (stoppingSince !== null) {
          // One Ctrl-C arrives twice under npm: from the terminal (to the whole foreground group) and
          // forwarded by npm to its child. Only a second press, later, means "exit now".
          if (Date.now() - stoppingSince < 1000) return;
          process.stderr.write("envoy-kvm: stopping again: exiting now\n");
          process.exit(1);
        }
        stoppingSince = Date.now();
        await gateway?.stop();
        if (echo !== null) {
          echo.closeAllConnections();
          await new Promise((resolve) => echo!.close(resolve));
        }
        await service?.stop();
        say("envoy-kvm stopped");
        process.exit(code);
      };
      // Before the (slow) start: a signal during start-up still stops what has started, in order.
      for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => void stop(0));

      if (!existsSync(WASM)) {
        say("building the filter (npm run build:release) …");
        const build = spawnSync("npm", ["run", "--silent", "build:release"], { cwd: ROOT, stdio: "inherit" });
        if (build.status !== 0) throw new Error("building the filter failed");
      }
      const { startService } = await import("../service/server.ts");
      // Insecure local mode on loopback unless tokens or DATABASE_URL say otherwise (service/config.ts).
      service = await startService();
      const { createEchoServer } = await import("./echo-upstream.ts");
      echo = createEchoServer();
      const upstreamPort = await listening(echo, opts.upstreamPort);
      const { loadGatewayConfig } = await import("./config.ts");
      const { startGateway } = await import("./server.ts");
      gateway = await startGateway(loadGatewayConfig(opts.config), {
        clusters: {
          upstream: `127.0.0.1:${upstreamPort}`,
          kvm_service: new URL(service.url).host,
          // envoy/plugins/outage.json's cluster, down on purpose: a loopback port nothing listens on.
          kvm_service_down: "127.0.0.1:1",
        },
        listen: { ingress: `127.0.0.1:${opts.gatewayPort}` },
        files: { "/etc/envoy/kvm_filter.wasm": WASM },
      });
      const url = gateway.urls.ingress;
      say("");
      say("envoy-kvm is running:");
      say(`  gateway (envoy/envoy.yaml on the Node host)  ${url}`);
      say(`  KVM service                                  ${service.url}`);
      say(`  echo upstream                                http://127.0.0.1:${upstreamPort}`);
      say("Try (answers as on a fresh start):");
      for (const { command, answer } of tryLines(url)) {
        say(`  $ ${command}`);
        say(`  ${answer}`);
      }
      say("Ctrl-C stops everything; the data is kept.");
    });
}
