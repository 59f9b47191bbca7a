// The filter's `cluster` policy end to end: the compiled filter on the Node host, its callouts going
// over HTTP to the real KVM service (built in-process, listening on a loopback port) on a real
// PostgreSQL database of its own, plus stub upstreams for the ways a service can misbehave.
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { endpointHandler, type ClusterHandler } from "../../host/index.ts";
import { createTestDatabase, startTestApp, type TestApp, type TestDatabase } from "../service/helpers.ts";

export interface RunningService {
  address: string;
  app: TestApp;
  close(): Promise<void>;
}

/** The KVM service on 127.0.0.1:<free port>, on its own migrated database. */
export async function startService(
  env: Record<string, string> = {},
  db?: TestDatabase,
): Promise<RunningService> {
  const database = db ?? (await createTestDatabase());
  const app = await startTestApp(database.url, env);
  await app.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.app.server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    app,
    close: async () => {
      await app.close();
      if (!db) await database.drop();
    },
  };
}

/** A cluster that forwards every callout to `address` and counts them. */
export function countingCluster(address: string): {
  handler: ClusterHandler;
  calls: () => number;
  reset(): void;
} {
  const forward = endpointHandler({ address });
  let calls = 0;
  return {
    handler: (req) => {
      calls++;
      return forward(req);
    },
    calls: () => calls,
    reset: () => {
      calls = 0;
    },
  };
}

/** An HTTP server answering every request with `answer` (which may also never answer). */
export async function stubServer(
  answer: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ address: string; close(): Promise<void> }> {
  const server = http.createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A TCP server that answers every connection with bytes that are not HTTP, then closes it. */
export async function garbageServer(): Promise<{ address: string; close(): Promise<void> }> {
  const server = net.createServer((socket) => {
    socket.on("data", () => socket.end("SSH-2.0-not-http\r\n\r\n"));
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback port nothing listens on. */
export async function closedAddress(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}
