// The `envoy-kvm` command as users run it: `node bin/envoy-kvm.js …` in a child process.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  createReadStream,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { batches } from "../../service/cli/bulk.ts";
import { embeddedPostgresUnavailable, freePort } from "../../service/embedded-postgres.ts";
import { createTestDatabase, type TestDatabase } from "./helpers.ts";

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../bin/envoy-kvm.js");

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function baseEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "info" };
  for (const name of [
    "DATABASE_URL",
    "KVM_DATA_TOKENS",
    "KVM_ADMIN_TOKENS",
    "KVM_INSECURE",
    "PORT",
    "KVM_URL",
  ]) {
    delete env[name];
  }
  return { ...env, ...extra };
}

function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  input?: string,
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: baseEnv(env) });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

interface ServiceProcess {
  child: ChildProcess;
  url: string;
  logs: () => string;
  exited: Promise<number | null>;
}

/** Starts `envoy-kvm service` on a free port and resolves once its "listening" log line arrives. */
function startServiceProcess(env: Record<string, string | undefined>): Promise<ServiceProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "service"], { env: baseEnv({ PORT: "0", ...env }) });
    let out = "";
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    child.stderr.on("data", (d) => (out += d));
    child.stdout.on("data", (d) => {
      out += d;
      for (const line of out.split("\n")) {
        const match = /"url":"(http:\/\/[^"]+)".*envoy-kvm service listening/.exec(line);
        if (match !== null) resolve({ child, url: match[1], logs: () => out, exited });
      }
    });
    void exited.then((code) => reject(new Error(`service exited (${code}) before listening:\n${out}`)));
  });
}

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await db?.drop();
});

describe("migrate", () => {
  test("status (exit 3 while pending), up, status, down", async () => {
    const url = await db.createSibling();
    const pending = await runCli(["migrate", "status"], { DATABASE_URL: url });
    assert.equal(pending.code, 3, pending.stderr);
    assert.equal(
      pending.stdout,
      "pending  0001_create-kvm-data\npending  0002_kvm-data-expiry-index\npending  0003_kvm-data-change-log\n" +
        "pending  0004_kvm-data-key-id\n",
    );
    const up = await runCli(["migrate", "up"], { DATABASE_URL: url });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(
      up.stdout,
      "applied: 0001_create-kvm-data, 0002_kvm-data-expiry-index, 0003_kvm-data-change-log, 0004_kvm-data-key-id\n",
    );
    assert.equal((await runCli(["migrate", "up"], { DATABASE_URL: url })).stdout, "schema is current\n");
    const current = await runCli(["migrate", "status"], { DATABASE_URL: url });
    assert.equal(current.code, 0);
    const down = await runCli(["migrate", "down"], { DATABASE_URL: url });
    assert.equal(down.stdout, "reverted: 0004_kvm-data-key-id\n");

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("INSERT INTO kvm_data (kvm_name, key, value) VALUES ('m', '\\x6b', '\\x76')");
    await client.end();
    assert.equal((await runCli(["migrate", "up"], { DATABASE_URL: url })).code, 0);
    // 0004, 0003 and 0002 go, 0001 refuses: the output still says what was reverted.
    const refused = await runCli(["migrate", "down", "--count", "4"], { DATABASE_URL: url });
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stdout,
      "reverted: 0004_kvm-data-key-id, 0003_kvm-data-change-log, 0002_kvm-data-expiry-index\n",
    );
    assert.match(refused.stderr, /kvm_data still holds entries .*migrate down --drop-data/);
    const dropped = await runCli(["migrate", "down", "--drop-data"], { DATABASE_URL: url });
    assert.equal(dropped.code, 0, dropped.stderr);
    assert.equal(dropped.stdout, "reverted: 0001_create-kvm-data\n");
  });

  test("the service refuses an unmigrated database with the command to run", async () => {
    const url = await db.createSibling();
    const res = await runCli(["service"], { DATABASE_URL: url, KVM_INSECURE: "1", PORT: "0" });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /database schema is older than this envoy-kvm .*run `envoy-kvm migrate up`/);
  });

  test("the service refuses to start without tokens unless KVM_INSECURE=1", async () => {
    const res = await runCli(["service"], { DATABASE_URL: db.url, PORT: "0" });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /configuration error: KVM_DATA_TOKENS is not set/);
  });
});

describe("service and kvm commands", () => {
  let service: ServiceProcess;
  let dbUrl: string;
  const token = "admin-secret";
  const kvm = (args: string[], input?: string) =>
    runCli(["kvm", "--url", service.url, ...args], { KVM_ADMIN_TOKEN: token }, input);

  before(async () => {
    dbUrl = await db.createSibling();
    assert.equal((await runCli(["migrate", "up"], { DATABASE_URL: dbUrl })).code, 0);
    service = await startServiceProcess({
      DATABASE_URL: dbUrl,
      KVM_DATA_TOKENS: "data-secret",
      KVM_ADMIN_TOKENS: token,
    });
  });
  after(async () => {
    if (service.child.exitCode === null) {
      service.child.kill("SIGTERM");
      await service.exited;
    }
  });

  test("put, get, list, delete", async () => {
    const created = await kvm(["put", "cli", "greeting", "hello"]);
    assert.equal(created.stdout, `created version ${await versionOf("cli", "greeting")}\n`);
    const piped = await kvm(["put", "cli", "piped", "--ttl", "60"], "from stdin");
    assert.match(piped.stdout, /^created version \d+\n$/);
    assert.equal((await kvm(["get", "cli", "piped"])).stdout, "from stdin");
    assert.equal((await kvm(["list", "cli"])).stdout, "greeting\npiped\n");
    assert.equal((await kvm(["list"])).stdout, "cli\t2\n");
    assert.equal((await kvm(["delete", "cli", "greeting"])).code, 0);
    const missing = await kvm(["get", "cli", "greeting"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no such entry .*\(404 not_found\)/);
  });

  test("the start-up log says values are stored in plaintext (the default)", () => {
    assert.match(
      service.logs(),
      /"msg":"values are stored in PLAINTEXT in PostgreSQL \(set KVM_ENCRYPTION_KEYS/,
    );
  });

  test("maps and keys named . and .. are reached as they are (issue 12 #15)", async () => {
    // fetch (WHATWG URL) would resolve these dot segments and reach another URL, or none.
    for (const [map, key] of [
      ["..", "."],
      ["..", ".."],
      [".", "a/../b"],
    ]) {
      assert.equal((await kvm(["put", map, key, `${map}|${key}`])).code, 0, `${map} ${key}`);
      assert.equal((await kvm(["get", map, key])).stdout, `${map}|${key}`);
    }
    assert.equal((await kvm(["list", ".."])).stdout, ".\n..\n");
    assert.equal((await kvm(["delete", "..", ".."])).code, 0);
    assert.equal((await kvm(["delete", ".", "--all"])).stdout, "deleted 1 entries\n");
    assert.equal(await rows("SELECT 1 FROM kvm_data WHERE kvm_name IN ('.', '..')"), 1);
    await sql("DELETE FROM kvm_data WHERE kvm_name = '..'");
  });

  test("list and export a map of 100 values of 1 MiB (issue 12 #4)", async () => {
    // Control bytes: 6 MiB of JSON each, 600 MiB for the map, more than one response could ever carry.
    await sql(
      `INSERT INTO kvm_data (kvm_name, key, value)
       SELECT 'big', convert_to('k' || lpad(i::text, 3, '0'), 'UTF8'), decode(repeat('01', 1048576), 'hex')
       FROM generate_series(1, 100) i`,
    );
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-cli-"));
    try {
      const keys = Array.from({ length: 100 }, (_, i) => `k${String(i + 1).padStart(3, "0")}`);
      const listed = await kvm(["list", "big"]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout, keys.map((k) => `${k}\n`).join(""));
      const file = path.join(dir, "big.json");
      const exported = await kvm(["export", "big", file]);
      assert.equal(exported.code, 0, exported.stderr);
      assert.equal(exported.stdout, `exported 100 entries to ${file}\n`);
      // One entry per line (the file as a whole is too large for one JavaScript string to read back).
      const names: string[] = [];
      const value = JSON.stringify("\u0001".repeat(1048576));
      const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
      for await (const line of lines) {
        const name = /^\{"name":"(k\d{3})","value":/.exec(line)?.[1];
        if (name === undefined) continue;
        assert.equal(line.replace(/,$/, ""), `{"name":"${name}","value":${value}}`);
        names.push(name);
      }
      assert.deepEqual(names, keys);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await sql("DELETE FROM kvm_data WHERE kvm_name = 'big'");
    }
  });

  test("put --ttl 0 is accepted and means never expires", async () => {
    const res = await kvm(["put", "ttl0", "k", "v", "--ttl", "0"]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^created version \d+\n$/);
    const listed = await kvm(["list", "ttl0", "--json"]);
    assert.equal(JSON.parse(listed.stdout).expires_at, null);
    await sql("DELETE FROM kvm_data WHERE kvm_name = 'ttl0'");
  });

  test("a missing token names the variable and the flag that supply it", async () => {
    // Unset, or set but empty.
    for (const env of [{}, { KVM_ADMIN_TOKEN: "" }]) {
      const res = await runCli(["kvm", "--url", service.url, "list"], env);
      assert.equal(res.code, 1);
      assert.equal(
        res.stderr,
        "envoy-kvm: the service wants an admin token: set KVM_ADMIN_TOKEN or pass --token <token> (401 unauthorized)\n",
      );
    }
  });

  test("an import file that is not JSON is named in the error", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-cli-"));
    try {
      const file = path.join(dir, "tenants.json");
      writeFileSync(file, "name,value\nacme,gold\n");
      const res = await kvm(["import", "tenants", file]);
      assert.equal(res.code, 1);
      assert.match(
        res.stderr,
        new RegExp(
          `^envoy-kvm: ${file.replace(/[.\\/]/g, "\\$&")} is not JSON( \\(at character \\d+\\))?; an import file is \\{"keyValueEntries":`,
        ),
      );
      assert.equal(res.stderr.split("\n").length, 2, "one line");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a failed export leaves no file behind, and an earlier export untouched", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-cli-"));
    try {
      const file = path.join(dir, "out.json");
      const res = await runCli(["kvm", "--url", service.url, "--token", "nope", "export", "cli", file]);
      assert.equal(res.code, 1);
      assert.deepEqual(readdirSync(dir), []);
      writeFileSync(file, "earlier export");
      assert.equal(
        (await runCli(["kvm", "--url", service.url, "--token", "nope", "export", "cli", file])).code,
        1,
      );
      assert.deepEqual(readdirSync(dir), ["out.json"]);
      assert.equal(readFileSync(file, "utf8"), "earlier export");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a service that is not there is reported with the reason", async () => {
    const port = await freePort();
    const res = await runCli(["kvm", "--url", `http://127.0.0.1:${port}`, "list"]);
    assert.equal(res.code, 1);
    assert.equal(
      res.stderr,
      `envoy-kvm: cannot reach http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
  });

  test("a wrong token is reported, not crashed on", async () => {
    const res = await runCli(["kvm", "--url", service.url, "--token", "nope", "list"]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /invalid bearer token \(401 unauthorized\)/);
  });

  test("import then export an apigeecli file", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-cli-"));
    try {
      const entries = Array.from({ length: 2500 }, (_, i) => ({
        name: `k${String(i).padStart(4, "0")}`,
        value: `v${i}`,
      }));
      writeFileSync(
        path.join(dir, "in.json"),
        JSON.stringify({ keyValueEntries: entries, nextPageToken: "" }),
      );
      const imported = await kvm(["import", "bulk", path.join(dir, "in.json"), "--batch-size", "1000"]);
      assert.equal(imported.code, 0, imported.stderr);
      assert.equal(
        imported.stdout,
        "imported 2500 entries: 2500 created, 0 replaced, 0 skipped, 0 already expired\n",
      );
      const exported = await kvm(["export", "bulk", path.join(dir, "out.json")]);
      assert.equal(exported.code, 0, exported.stderr);
      assert.equal(exported.stdout, `exported 2500 entries to ${path.join(dir, "out.json")}\n`);
      const file = JSON.parse(readFileSync(path.join(dir, "out.json"), "utf8"));
      assert.deepEqual(file, { keyValueEntries: entries, nextPageToken: "" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a failing import batch: its entries numbered as in the file, and what landed before it", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-cli-"));
    try {
      const entries = Array.from({ length: 25 }, (_, i) => ({
        name: `p${String(i).padStart(2, "0")}`,
        value: "v",
      }));
      entries[21].name = "x".repeat(513);
      writeFileSync(path.join(dir, "in.json"), JSON.stringify({ keyValueEntries: entries }));
      const res = await kvm(["import", "partial", path.join(dir, "in.json"), "--batch-size", "10"]);
      assert.equal(res.code, 1);
      assert.equal(
        res.stderr,
        "envoy-kvm: keyValueEntries[21].name is 513 bytes; the limit is 512 bytes (400 key_too_long); " +
          "entries 20–24 were not imported, the 20 before them were " +
          "(20 created, 0 replaced, 0 skipped, 0 already expired); to resume: --from 20 " +
          "(entries imported twice keep the file's value: upsert writes it again, insert skips it)\n",
      );
      assert.equal((await kvm(["list"])).stdout.includes("partial\t20\n"), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await sql("DELETE FROM kvm_data WHERE kvm_name = 'partial'");
    }
  });

  test("export finds its map among more than one page of maps", async () => {
    // 1,001 other maps: the map listing (used to size the progress bar) has a next page, and its page token
    // must not leak into the entries export.
    await sql(
      `INSERT INTO kvm_data (kvm_name, key, value)
       SELECT 'many-' || lpad(i::text, 4, '0'), '\\x6b'::bytea, '\\x76'::bytea FROM generate_series(0, 1000) i`,
    );
    await sql(
      `INSERT INTO kvm_data (kvm_name, key, value) VALUES ('a-first', '\\x31', '\\x76'), ('a-first', '\\x32', '\\x76')`,
    );
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-cli-"));
    try {
      const file = path.join(dir, "out.json");
      const res = await kvm(["export", "a-first", file]);
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), {
        keyValueEntries: [
          { name: "1", value: "v" },
          { name: "2", value: "v" },
        ],
        nextPageToken: "",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await sql("DELETE FROM kvm_data WHERE kvm_name LIKE 'many-%' OR kvm_name = 'a-first'");
    }
  });

  test("SIGTERM: stops accepting, finishes the in-flight request, exits 0", async () => {
    // A transaction holding the row lock keeps one PUT in flight for as long as the test wants.
    await fetch(`${service.url}/v1/kvms/shutdown/entries/k`, {
      method: "PUT",
      body: "before",
      headers: { authorization: "Bearer data-secret" },
    });
    const locker = new pg.Client({ connectionString: dbUrl });
    await locker.connect();
    await locker.query("BEGIN");
    await locker.query("SELECT 1 FROM kvm_data WHERE kvm_name = 'shutdown' FOR UPDATE");
    const inflight = fetch(`${service.url}/v1/kvms/shutdown/entries/k`, {
      method: "PUT",
      body: "during",
      headers: { authorization: "Bearer data-secret" },
    });
    const waiting = async () =>
      (
        await locker.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
      ).rows[0].n;
    while ((await waiting()) === 0) await new Promise((r) => setTimeout(r, 20));

    service.child.kill("SIGTERM");
    // New connections are refused while the in-flight request still waits.
    for (;;) {
      const refused = await fetch(`${service.url}/healthz`).then(
        (r) => r.status === 503,
        () => true,
      );
      if (refused) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await locker.query("COMMIT");
    await locker.end();
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(await service.exited, 0);
    assert.match(service.logs(), /shutting down: finishing in-flight requests/);
  });

  async function rows(text: string): Promise<number> {
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    try {
      return (await c.query(text)).rowCount ?? 0;
    } finally {
      await c.end();
    }
  }

  async function sql(text: string): Promise<void> {
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  }

  async function versionOf(map: string, key: string): Promise<number> {
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    try {
      const r = await c.query("SELECT version::int AS v FROM kvm_data WHERE kvm_name = $1 AND key = $2", [
        map,
        Buffer.from(key),
      ]);
      return r.rows[0]?.v ?? -1;
    } finally {
      await c.end();
    }
  }
});

test("a --url without a scheme says to add it", async () => {
  const res = await runCli(["kvm", "--url", "localhost:8081", "list"]);
  assert.equal(res.code, 1);
  assert.equal(
    res.stderr,
    "envoy-kvm: --url localhost:8081 has no scheme: write http://localhost:8081 " +
      "(the --url flag or the KVM_URL variable)\n",
  );
  const fromEnv = await runCli(["kvm", "list"], { KVM_URL: "ftp://127.0.0.1:8081" });
  assert.equal(
    fromEnv.stderr,
    "envoy-kvm: --url ftp://127.0.0.1:8081 is not an http:// or https:// URL, e.g. http://127.0.0.1:8081 " +
      "(the --url flag or the KVM_URL variable)\n",
  );
});

test("a DATABASE_URL that is not a URL is reported as such (not as a host lookup failure)", async () => {
  for (const args of [["migrate", "status"], ["service"]]) {
    const res = await runCli(args, { DATABASE_URL: "notaurl", KVM_INSECURE: "1", PORT: "0" });
    assert.equal(res.code, 1, args.join(" "));
    assert.equal(
      res.stderr,
      "envoy-kvm: configuration error: DATABASE_URL is not a valid PostgreSQL URL: " +
        "write it as postgres://user:password@host:5432/database\n",
    );
  }
});

test("import batches are bounded by entry count and by bytes", () => {
  const entries = Array.from({ length: 10 }, (_, i) => ({ name: `k${i}`, value: "x".repeat(100) }));
  assert.deepEqual(
    [...batches(entries, 4, 1_000_000)].map((b) => b.length),
    [4, 4, 2],
  );
  const perEntry = JSON.stringify(entries[0]).length;
  assert.deepEqual(
    [...batches(entries, 1000, perEntry * 3)].map((b) => b.length),
    [3, 3, 3, 1],
  );
  // An entry larger than the byte budget still travels, alone.
  assert.deepEqual(
    [...batches(entries.slice(0, 2), 1000, 10)].map((b) => b.length),
    [1, 1],
  );
});

test("with KVM_ENCRYPTION_KEYS the service encrypts and says so (key id only); kvm reencrypt moves older rows to the key", async () => {
  const dbUrl = await db.createSibling();
  assert.equal((await runCli(["migrate", "up"], { DATABASE_URL: dbUrl })).code, 0);
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  // Rows from before encryption (plaintext), and one under a key this service does not have.
  await client.query(
    `INSERT INTO kvm_data (kvm_name, key, value)
     SELECT 'old', convert_to('k' || i, 'UTF8'), convert_to('v' || i, 'UTF8') FROM generate_series(1, 25) i`,
  );
  await client.query("INSERT INTO kvm_data (kvm_name, key, value, key_id) VALUES ('lost', 'k', 'x', 'gone')");
  const key = randomBytes(32).toString("base64");
  const service = await startServiceProcess({
    DATABASE_URL: dbUrl,
    KVM_INSECURE: "1",
    KVM_ENCRYPTION_KEYS: `prod-1:${key}`,
  });
  try {
    assert.match(
      service.logs(),
      /"msg":"values are encrypted at rest with AES-256-GCM under key \\"prod-1\\"/,
    );
    const put = await fetch(`${service.url}/v1/kvms/enc/entries/k`, { method: "PUT", body: "secret" });
    assert.equal(put.status, 201);
    assert.equal(await (await fetch(`${service.url}/v1/kvms/enc/entries/k`)).text(), "secret");
    const row = (await client.query("SELECT key_id, value FROM kvm_data WHERE kvm_name = 'enc'")).rows[0];
    assert.equal(row.key_id, "prod-1");
    assert.equal(row.value.includes(Buffer.from("secret")), false);

    const reencrypt = () => runCli(["kvm", "--url", service.url, "reencrypt", "--batch-size", "10"]);
    const first = await reencrypt();
    assert.equal(first.code, 1);
    assert.equal(
      first.stdout,
      're-encrypted 25 rows to key "prod-1"; 0 rewritten by writers meanwhile; 1 could not be decrypted\n',
    );
    assert.equal(
      first.stderr,
      "envoy-kvm: 1 rows could not be decrypted (maps: lost): give the service the key they were written with " +
        "(KVM_ENCRYPTION_KEYS) and run reencrypt again\n",
    );
    const keyIds = await client.query(
      "SELECT key_id, count(*)::int AS n FROM kvm_data GROUP BY 1 ORDER BY 1",
    );
    assert.deepEqual(keyIds.rows, [
      { key_id: "gone", n: 1 },
      { key_id: "prod-1", n: 26 },
    ]);
    assert.equal(await (await fetch(`${service.url}/v1/kvms/old/entries/k7`)).text(), "v7");
    // Run again (as after an interruption), the unreadable row gone: nothing is left to do.
    await client.query("DELETE FROM kvm_data WHERE kvm_name = 'lost'");
    const again = await reencrypt();
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      again.stdout,
      're-encrypted 0 rows to key "prod-1"; 0 rewritten by writers meanwhile; 0 could not be decrypted\n',
    );
  } finally {
    await client.end();
    service.child.kill("SIGTERM");
    await service.exited;
  }
  assert.equal(service.logs().includes(key), false);
  assert.equal(service.logs().includes("secret"), false);
});

test("a second SIGTERM during shutdown exits 1 at once (not killed by the signal)", async () => {
  const dbUrl = await db.createSibling();
  assert.equal((await runCli(["migrate", "up"], { DATABASE_URL: dbUrl })).code, 0);
  const service = await startServiceProcess({ DATABASE_URL: dbUrl, KVM_INSECURE: "1" });
  const locker = new pg.Client({ connectionString: dbUrl });
  await locker.connect();
  try {
    await fetch(`${service.url}/v1/kvms/twice/entries/k`, { method: "PUT", body: "before" });
    await locker.query("BEGIN");
    await locker.query("SELECT 1 FROM kvm_data WHERE kvm_name = 'twice' FOR UPDATE");
    // A request held in flight by the row lock keeps the first shutdown waiting.
    const inflight = fetch(`${service.url}/v1/kvms/twice/entries/k`, { method: "PUT", body: "during" }).catch(
      () => null,
    );
    const waiting = async () =>
      (
        await locker.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
      ).rows[0].n;
    while ((await waiting()) === 0) await new Promise((r) => setTimeout(r, 20));
    service.child.kill("SIGTERM");
    while (!/shutting down/.test(service.logs())) await new Promise((r) => setTimeout(r, 20));
    service.child.kill("SIGTERM");
    assert.equal(await service.exited, 1);
    assert.match(service.logs(), /SIGTERM again: exiting without waiting for in-flight requests/);
    await inflight;
  } finally {
    await locker.query("ROLLBACK").catch(() => {});
    await locker.end();
  }
});

describe("zero-setup default", () => {
  test(
    "without DATABASE_URL: embedded PostgreSQL, migrated, insecure local mode, data kept across restarts",
    { skip: embeddedPostgresUnavailable() ?? false },
    async () => {
      const dir = mkdtempSync(path.join(tmpdir(), "kvm-embedded-"));
      // As root, PostgreSQL runs as the `postgres` user, which must be able to enter the folder.
      chmodSync(dir, 0o755);
      const env = { KVM_DATA_DIR: path.join(dir, "pg") };
      try {
        const first = await startServiceProcess(env);
        assert.match(first.logs(), /INSECURE local mode/);
        assert.match(first.logs(), new RegExp(`data persists in ${path.join(dir, "pg")}`));
        const put = await fetch(`${first.url}/v1/kvms/embedded/entries/k`, {
          method: "PUT",
          body: "persisted",
        });
        assert.equal(put.status, 201);
        first.child.kill("SIGTERM");
        assert.equal(await first.exited, 0);

        const second = await startServiceProcess(env);
        const get = await fetch(`${second.url}/v1/kvms/embedded/entries/k`);
        assert.equal(await get.text(), "persisted");
        second.child.kill("SIGTERM");
        assert.equal(await second.exited, 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
