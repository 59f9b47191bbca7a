// The embedded PostgreSQL: where it runs as root, sharing it with CLI commands while the service runs, and its
// start-up failures, each of which must end in one clear error, never in a hang.
import { test } from "node:test";
import { spawn } from "node:child_process";
import { once } from "node:events";
import assert from "node:assert/strict";
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { embeddedPostgresUnavailable, startEmbeddedPostgres } from "../../service/embedded-postgres.ts";

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../bin/envoy-kvm.js");

test(
  "as root, binaries and data a private folder hides from the postgres user are moved where it can reach them, and the data persists",
  {
    skip:
      (userInfo().uid !== 0 && "PostgreSQL runs as another user only when started as root") ||
      (embeddedPostgresUnavailable() ?? false),
  },
  async () => {
    // A clone in a private home as containers and CI have it: /root-like (mode 0700) holding the binaries
    // (a copy of the platform package's native/ folder) and the default data folder.
    const home = mkdtempSync(path.join(tmpdir(), "kvm-private-"));
    const reachable = mkdtempSync(path.join(tmpdir(), "kvm-reachable-"));
    chmodSync(home, 0o700);
    chmodSync(reachable, 0o755);
    const native = path.join(
      path.dirname(
        createRequire(createRequire(import.meta.url).resolve("embedded-postgres")).resolve(
          `@embedded-postgres/${process.platform}-${process.arch}`,
        ),
      ),
      "..",
      "native",
    );
    cpSync(native, path.join(home, "native"), { recursive: true, verbatimSymlinks: true });
    const options = {
      dataDir: path.join(home, ".data", "postgres"),
      port: null,
      binaries: path.join(home, "native"),
      reachableRoot: reachable,
    };
    try {
      const first = await startEmbeddedPostgres(options);
      assert.match(first.dataDir, new RegExp(`^${reachable}/data-[0-9a-f]{12}/postgres$`));
      assert.equal(first.created, true);
      const client = new pg.Client({ connectionString: first.url });
      await client.connect();
      await client.query("CREATE TABLE kept (v text)");
      await client.query("INSERT INTO kept VALUES ('across restarts')");
      await client.end();
      await first.stop();
      assert.ok(
        readdirSync(reachable).some((name) => name.startsWith("postgres-")),
        "the binaries were staged",
      );

      const second = await startEmbeddedPostgres(options);
      assert.equal(second.dataDir, first.dataDir);
      assert.equal(second.created, false);
      const again = new pg.Client({ connectionString: second.url });
      await again.connect();
      assert.deepEqual((await again.query("SELECT v FROM kept")).rows, [{ v: "across restarts" }]);
      await again.end();
      await second.stop();
    } finally {
      rmSync(home, { recursive: true, force: true });
      rmSync(reachable, { recursive: true, force: true });
    }
  },
);

test(
  "while the service runs on a data folder, CLI commands use its PostgreSQL instead of failing on the lock",
  { skip: embeddedPostgresUnavailable() ?? false },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-shared-"));
    chmodSync(dir, 0o755);
    const env: NodeJS.ProcessEnv = { ...process.env, KVM_DATA_DIR: path.join(dir, "pg"), PORT: "0" };
    delete env.DATABASE_URL;
    const service = spawn(process.execPath, [BIN, "service"], { env });
    let logs = "";
    service.stdout.on("data", (d) => (logs += d));
    service.stderr.on("data", (d) => (logs += d));
    try {
      await new Promise<void>((resolve, reject) => {
        service.stdout.on("data", () => {
          if (logs.includes("envoy-kvm service listening")) resolve();
        });
        service.on("close", (code) => reject(new Error(`service exited (${code}):\n${logs}`)));
      });
      const status = spawn(process.execPath, [BIN, "migrate", "status"], { env });
      let stdout = "";
      let stderr = "";
      status.stdout.on("data", (d) => (stdout += d));
      status.stderr.on("data", (d) => (stderr += d));
      const [code] = await once(status, "close");
      assert.equal(code, 0, stderr);
      assert.equal(
        stdout,
        "applied  0001_create-kvm-data\napplied  0002_kvm-data-expiry-index\napplied  0003_kvm-data-change-log\n" +
          "applied  0004_kvm-data-key-id\n",
      );
      assert.match(
        stderr,
        new RegExp(
          `^DATABASE_URL is not set: using the embedded PostgreSQL of the running envoy-kvm service \\(pid ${service.pid}\\)`,
        ),
      );
    } finally {
      service.kill("SIGTERM");
      await once(service, "close");
      rmSync(dir, { recursive: true, force: true });
    }
    assert.match(logs.trimEnd().split("\n").at(-1) ?? "", /"msg":"envoy-kvm service stopped"/);
  },
);

test(
  "a data folder already in use: one error naming PostgreSQL's reason, exit 1",
  { skip: embeddedPostgresUnavailable() ?? false },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-busy-"));
    // As root, PostgreSQL runs as the `postgres` user, which must be able to enter the folder.
    chmodSync(dir, 0o755);
    const dataDir = path.join(dir, "pg");
    const first = await startEmbeddedPostgres({ dataDir, port: null });
    try {
      // The CLI in a child process: it used to end with exit code 13 (an await that never settles) and no
      // message at all.
      const env: NodeJS.ProcessEnv = { ...process.env, KVM_DATA_DIR: dataDir };
      delete env.DATABASE_URL;
      const child = spawn(process.execPath, [BIN, "migrate", "status"], { env });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      const [code] = await once(child, "close");
      assert.equal(code, 1, stderr);
      assert.match(
        stderr,
        /^DATABASE_URL is not set: using the embedded PostgreSQL in .*\nenvoy-kvm: embedded PostgreSQL failed to start in .*\/pg \(is another envoy-kvm using this data folder\?\)/,
      );
      assert.match(stderr, /lock file "postmaster.pid" already exists/);
    } finally {
      await first.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// In its own process group (so Ctrl-C reaches the service first), the embedded PostgreSQL must still not outlive
// a process that dies of a signal nobody in it handles, nor one that simply exits.
for (const ending of ["SIGINT", "SIGTERM", "exit"] as const) {
  test(
    `a process that started the embedded PostgreSQL and ends by ${ending} leaves no PostgreSQL behind`,
    { skip: embeddedPostgresUnavailable() ?? false },
    async () => {
      const dir = mkdtempSync(path.join(tmpdir(), "kvm-orphan-"));
      const module = path.join(path.dirname(BIN), "../service/embedded-postgres.ts");
      const script = `
        const { startEmbeddedPostgres } = await import(${JSON.stringify(module)});
        const db = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(path.join(dir, "pgdata"))}, port: null });
        console.log("port " + db.port);
        if (${JSON.stringify(ending)} === "exit") process.exit(0);
        setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      try {
        let out = "";
        for await (const chunk of child.stdout) {
          out += String(chunk);
          if (/port \d+\n/.test(out)) break;
        }
        const port = Number(/port (\d+)/.exec(out)?.[1]);
        assert.ok(port > 0, `the script printed its port: ${out}`);
        const exited = child.exitCode !== null ? null : once(child, "exit");
        if (ending !== "exit") child.kill(ending);
        const [code, signal] = (exited ? await exited : [child.exitCode, child.signalCode]) as [
          number | null,
          string | null,
        ];
        assert.deepEqual(
          ending === "exit" ? [code, signal] : [signal],
          ending === "exit" ? [0, null] : [ending],
        );
        // PostgreSQL gets a fast shutdown: within a few seconds nothing answers on its port.
        const deadline = Date.now() + 15_000;
        for (;;) {
          const client = new pg.Client({
            connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
            connectionTimeoutMillis: 1000,
          });
          const refused = await client.connect().then(
            () => client.end().then(() => false),
            (err: NodeJS.ErrnoException) => err.code === "ECONNREFUSED",
          );
          if (refused) break;
          assert.ok(
            Date.now() < deadline,
            `PostgreSQL still accepts connections on ${port} after its parent ended`,
          );
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      } finally {
        child.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}
