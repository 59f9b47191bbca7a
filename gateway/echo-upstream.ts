// The demo upstream: answers every request with what it received, written like the HTTP message —
// `METHOD path`, then one `name: value` line per header (sorted by name), a blank line and the body
// — so a curl piped to grep shows exactly what the filter did to the request. GET /healthz answers
// "ok" (the sandbox's healthcheck).
//
//   node --import tsx gateway/echo-upstream.ts [--port 8080] [--host 0.0.0.0]   (also PORT, HOST)
import { createServer, type IncomingMessage, type Server } from "node:http";
import { pathToFileURL } from "node:url";

// The echo of one request. Repeated headers keep one line each, in the order received.
export function echoOf(request: IncomingMessage, body: Buffer): string {
  const headers: [string, string][] = [];
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    headers.push([request.rawHeaders[i].toLowerCase(), request.rawHeaders[i + 1]]);
  }
  headers.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const lines = [`${request.method} ${request.url}`, ...headers.map(([name, value]) => `${name}: ${value}`)];
  return lines.join("\n") + "\n\n" + body.toString("utf8");
}

export function createEchoServer(): Server {
  return createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      if (request.method === "GET" && request.url === "/healthz") {
        response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        return;
      }
      const text = echoOf(request, Buffer.concat(chunks));
      response.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end(text);
    });
  });
}

function option(argv: string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const port = Number(option(argv, "--port") ?? process.env.PORT ?? 8080);
  const host = option(argv, "--host") ?? process.env.HOST ?? "0.0.0.0";
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`echo-upstream: --port must be a port number, not ${port}`);
    process.exit(1);
  }
  const server = createEchoServer();
  server.listen(port, host, () => console.log(`echo upstream listening on http://${host}:${port}`));
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
