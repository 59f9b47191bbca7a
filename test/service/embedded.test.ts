// The embedded PostgreSQL's start-up failures: each must end in one clear error, never in a hang.
import { test } from "node:test";
import { spawn } from "node:child_process";
import { once } from "node:events";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { embeddedPostgresUnavailable, startEmbeddedPostgres } from "../../service/embedded-postgres.ts";

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../bin/envoy-kvm.js");

test(
  "as root, a data folder inside a private folder is refused with the folder and the ways out",
  {
    skip:
      (userInfo().uid !== 0 && "PostgreSQL runs as another user only when started as root") ||
      (embeddedPostgresUnavailable() ?? false),
  },
  async () => {
    const home = mkdtempSync(path.join(tmpdir(), "kvm-private-"));
    chmodSync(home, 0o700);
    try {
      await assert.rejects(
        startEmbeddedPostgres({ dataDir: path.join(home, ".data", "postgres"), port: null }),
        (err: Error) => {
          assert.equal(
            err.message,
            `running as root, the embedded PostgreSQL runs as the system user "postgres", which can not reach ` +
              `the data folder (${path.join(home, ".data")}): it can not enter ${home} (mode 0700). ` +
              "Run envoy-kvm as a regular user, move the project (and KVM_DATA_DIR) to a folder others can " +
              "enter, or set DATABASE_URL to use your own PostgreSQL",
          );
          return true;
        },
      );
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
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
