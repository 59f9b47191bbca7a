// A TCP proxy in front of the test PostgreSQL that a test can cut: the database "stops" (open connections reset,
// new ones refused), "goes silent" (connections accepted, nothing forwarded either way: a black hole), and comes
// back — without touching the PostgreSQL server other tests share.
import net from "node:net";

export class TcpProxy {
  private mode: "forward" | "silent" = "forward";
  private readonly sockets = new Set<net.Socket>();
  private server: net.Server;

  private constructor(
    private readonly target: { host: string; port: number },
    readonly port: number,
    server: net.Server,
  ) {
    this.server = server;
  }

  /** Proxies to `databaseUrl`'s host and port; `url` is the same database through the proxy. */
  static async start(databaseUrl: string): Promise<{ proxy: TcpProxy; url: string }> {
    const u = new URL(databaseUrl);
    const target = { host: u.hostname, port: Number(u.port || 5432) };
    const probe = await listen(0, () => {});
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const proxy = new TcpProxy(target, port, await listen(port, () => {}));
    proxy.server.on("connection", (socket) => proxy.accept(socket));
    u.hostname = "127.0.0.1";
    u.port = String(port);
    return { proxy, url: u.toString() };
  }

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => {});
    // A black hole accepts and never answers.
    if (this.mode === "silent") return;
    const upstream = net.connect(this.target.port, this.target.host);
    this.sockets.add(upstream);
    upstream.on("close", () => {
      this.sockets.delete(upstream);
      client.destroy();
    });
    upstream.on("error", () => {});
    client.on("close", () => upstream.destroy());
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on("data", (chunk: Buffer) => {
        if (this.mode === "forward") to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
  }

  /** The database stopped: every open connection is reset and new ones are refused. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
  }

  /** The database is black-holed: connections (open or new) stay up, but nothing gets through. */
  silence(): void {
    this.mode = "silent";
  }

  /** The database is back: new connections are forwarded again (connections left from before are dropped). */
  async restore(): Promise<void> {
    this.mode = "forward";
    for (const socket of this.sockets) socket.destroy();
    if (!this.server.listening) {
      this.server = await listen(this.port, (socket) => this.accept(socket));
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function listen(port: number, onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer(onConnection);
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

/** A server that accepts TCP connections and never says a word: a database host that is black-holed. */
export async function blackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = await listen(0, (socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/silent`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
