// The embedded PostgreSQL's start-up checks that run before any PostgreSQL process does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import { startEmbeddedPostgres } from "../../service/embedded-postgres.ts";

test(
  "as root, a data folder inside a private folder is refused with the folder and the ways out",
  { skip: userInfo().uid !== 0 && "PostgreSQL runs as another user only when started as root" },
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
