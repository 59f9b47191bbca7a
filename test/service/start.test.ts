// `npm start` as users and process managers run it: the whole stack comes up and every command it
// prints answers as printed; a TERM sent to the npm process stops everything — gateway, service and
// its embedded PostgreSQL — with a "stopped" line last, leaving no process behind; CLI commands work
// while it runs; and `envoy-kvm --version` answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { embeddedPostgresUnavailable } from "../../service/embedded-postgres.ts";
import { groupAlive, processesMentioning } from "./helpers.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = path.join(ROOT, "bin/envoy-kvm.js");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("envoy-kvm --version prints the package version", () => {
  const { version } = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
    version: string;
  };
  assert.equal(execFileSync(process.execPath, [BIN, "--version"], { encoding: "utf8" }), `${version}\n`);
});

interface RunningNpm {
  npm: ChildProcess;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  logs(): string;
  /** Waits for npm to exit after `signal`, then asserts that nothing is left and the log ends as it should. */
  stoppedCleanly(): Promise<number | null>;
  cleanUp(): void;
}

// `npm start` on a data folder of its own, in its own process group as a terminal or a process manager starts
// it; resolves once it printed what to try.
async function startNpm(): Promise<RunningNpm> {
  const dir = mkdtempSync(path.join(tmpdir(), "kvm-npm-start-"));
  chmodSync(dir, 0o755);
  const dataDir = path.join(dir, "pg");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KVM_DATA_DIR: dataDir,
    PORT: "0",
    GATEWAY_PORT: "0",
    UPSTREAM_PORT: "0",
    LOG_LEVEL: "info",
  };
  for (const name of ["DATABASE_URL", "KVM_DATA_TOKENS", "KVM_ADMIN_TOKENS", "KVM_INSECURE", "HOST"]) {
    delete env[name];
  }
  const npm = spawn("npm", ["start", "--silent"], { cwd: ROOT, env, detached: true });
  let logs = "";
  npm.stdout.on("data", (d) => (logs += d));
  npm.stderr.on("data", (d) => (logs += d));
  // "exit", not "close": a process left behind would hold the output pipes open.
  const npmExited = new Promise<number | null>((resolve) => npm.on("exit", (code) => resolve(code)));
  const outputClosed = new Promise<void>((resolve) => npm.on("close", () => resolve()));
  for (let i = 0; i < 900 && !logs.includes("Ctrl-C stops everything") && npm.exitCode === null; i++) {
    await sleep(100);
  }
  return {
    npm,
    dataDir,
    env,
    logs: () => logs,
    stoppedCleanly: async () => {
      const code = await npmExited;
      for (let i = 0; i < 300 && (groupAlive(npm.pid!) || processesMentioning(dataDir).length > 0); i++) {
        await sleep(100);
      }
      assert.equal(groupAlive(npm.pid!), false, `processes left in npm's group:\n${logs}`);
      assert.deepEqual(processesMentioning(dataDir), [], "PostgreSQL is still running");
      assert.equal(
        existsSync(path.join(dataDir, "postmaster.pid")),
        false,
        "PostgreSQL did not shut down cleanly",
      );
      await outputClosed;
      assert.equal(logs.trimEnd().split("\n").at(-1), "envoy-kvm stopped", logs);
      return code;
    },
    cleanUp: () => {
      if (groupAlive(npm.pid!)) process.kill(-npm.pid!, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test(
  "npm start: the printed commands answer as printed; a TERM to npm stops it all, ending with a stopped line",
  { skip: embeddedPostgresUnavailable() ?? false, timeout: 120_000 },
  async () => {
    const running = await startNpm();
    const { npm, dataDir, env } = running;
    try {
      const logs = running.logs();
      assert.match(
        logs,
        /envoy-kvm is running:\n {2}gateway \(envoy\/envoy\.yaml on the Node host\) +http:\/\/127\.0\.0\.1:\d+\n/,
      );
      assert.ok(processesMentioning(dataDir).length > 0, "PostgreSQL runs on the data folder");
      // Every printed `$ command` gives the answer printed under it.
      const printed = logs.slice(logs.indexOf("Try (answers as on a fresh start):")).split("\n");
      let tried = 0;
      for (let i = 0; i < printed.length; i++) {
        if (!printed[i].startsWith("  $ ")) continue;
        const command = printed[i].slice(4);
        const answer = execFileSync("bash", ["-c", command], { encoding: "utf8" }).trimEnd();
        assert.equal(answer, printed[i + 1].slice(2), command);
        tried++;
      }
      assert.ok(tried >= 8, `only ${tried} commands printed`);

      // CLI commands while the stack runs: migrate on its embedded PostgreSQL (not failing on the
      // data folder's lock), kvm through its KVM service's admin API.
      const kvmUrl = /^ {2}KVM service +(http:\/\/\S+)$/m.exec(logs)?.[1];
      assert.ok(kvmUrl, "the KVM service's URL is printed");
      const cli = (...args: string[]) =>
        spawnSync(process.execPath, [BIN, ...args], { env: { ...env, KVM_URL: kvmUrl }, encoding: "utf8" });
      const status = cli("migrate", "status");
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, /^applied {2}0001_create-kvm-data\n/);
      assert.doesNotMatch(status.stdout, /pending/);
      assert.match(status.stderr, /using the embedded PostgreSQL of the running envoy-kvm service/);
      const entry = cli("kvm", "get", "profiles", "ann");
      assert.equal(entry.status, 0, entry.stderr);
      assert.equal(entry.stdout, "ann@example.com", "stored by the printed cluster put");

      process.kill(npm.pid!, "SIGTERM");
      await running.stoppedCleanly();
    } finally {
      running.cleanUp();
    }
  },
);

test(
  "npm start: Ctrl-C in a terminal (SIGINT to the whole group, which npm forwards too) stops it once, cleanly",
  { skip: embeddedPostgresUnavailable() ?? false, timeout: 120_000 },
  async () => {
    const running = await startNpm();
    try {
      assert.match(running.logs(), /Ctrl-C stops everything/);
      process.kill(-running.npm.pid!, "SIGINT");
      assert.equal(await running.stoppedCleanly(), 0);
      assert.doesNotMatch(running.logs(), /stopping again/, "one Ctrl-C is not a second one");
    } finally {
      running.cleanUp();
    }
  },
);
