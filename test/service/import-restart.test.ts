// The service killed during `envoy-kvm kvm import` (issue 10, faults): the import stops with a report of what was
// committed and where to resume; the database agrees with the report; the resumed import completes the map.
// The service runs in-process (its death: closed, its answer in flight dropped). The kill lands at a batch boundary chosen by an HTTP relay between the CLI and the service, either before the
// batch reaches the service (not committed) or after the service committed it but before its answer got back
// (committed, unknown to the CLI).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { LONG_CAMPAIGN, recordReliability } from "../reliability/record.ts";
import { createTestDatabase, startTestApp, type TestDatabase } from "./helpers.ts";

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../bin/envoy-kvm.js");
const ENTRIES = 500;
const BATCH = 50;
/** [batch number at which the service dies, whether it commits that batch first]. */
const KILLS: [number, boolean][] = LONG_CAMPAIGN
  ? Array.from({ length: ENTRIES / BATCH - 1 }, (_, i) => i + 1).flatMap((n) => [
      [n, false] as [number, boolean],
      [n, true] as [number, boolean],
    ])
  : [
      [3, false],
      [4, true],
    ];

let db: TestDatabase;
let dir: string;
before(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), "kvm-import-restart-"));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

interface Service {
  port: number;
  stop(): Promise<void>;
}

/** The service in-process on a loopback port; stop() is its death (the relay drops the answer in flight). */
async function startService(): Promise<Service> {
  const t = await startTestApp(db.url);
  await t.app.listen({ port: 0, host: "127.0.0.1" });
  let stopped: Promise<void> | null = null;
  return { port: (t.app.server.address() as AddressInfo).port, stop: () => (stopped ??= t.close()) };
}

/** Forwards to the current service; the `killAt`-th import request (1-based) kills it, before or after. */
async function relay(target: () => number, killAt: number, commitFirst: boolean, kill: () => Promise<void>) {
  let imports = 0;
  const server = http.createServer((req, res) => {
    const nth = req.url?.includes("/import") ? ++imports : 0;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (nth === killAt && !commitFirst) {
        void kill().then(() => res.socket?.destroy());
        return;
      }
      const upstream = http.request(
        { host: "127.0.0.1", port: target(), method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          const body: Buffer[] = [];
          answer.on("data", (c: Buffer) => body.push(c));
          answer.on("end", () => {
            if (nth === killAt) {
              // Committed: the service answered; it dies before the answer reaches the CLI.
              void kill().then(() => res.socket?.destroy());
              return;
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      upstream.on("error", () => res.socket?.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function runImport(url: string, kvm: string, file: string, extra: string[] = []) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      [BIN, "kvm", "import", kvm, file, "--batch-size", String(BATCH), "--url", url, ...extra],
      { env: { ...process.env, KVM_URL: undefined } },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function storedKeys(kvm: string): Promise<Map<string, string>> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const res = await c.query<{ key: Buffer; value: Buffer }>(
      "SELECT key, value FROM kvm_data WHERE kvm_name = $1",
      [kvm],
    );
    return new Map(res.rows.map((r) => [r.key.toString(), r.value.toString()]));
  } finally {
    await c.end();
  }
}

test(`the service killed during an import at ${KILLS.length} batch boundaries: the report matches the database, --from resumes`, async (ctx) => {
  const entries = Array.from({ length: ENTRIES }, (_, i) => ({
    name: `e${String(i).padStart(4, "0")}`,
    value: `value-${i}`,
  }));
  const file = path.join(dir, "in.json");
  writeFileSync(file, JSON.stringify({ keyValueEntries: entries }));
  const strip = (text: string) =>
    text.split("\n").filter((l) => l.startsWith("envoy-kvm:") || l.startsWith("imported"));

  for (const [killAt, commitFirst] of KILLS) {
    const kvm = `restart-${killAt}-${commitFirst ? "after" : "before"}`;
    let service = await startService();
    const kill = () => service.stop();
    const proxy = await relay(() => service.port, killAt, commitFirst, kill);
    try {
      const first = await runImport(proxy.url, kvm, file);
      const done = (killAt - 1) * BATCH;
      assert.equal(first.code, 1, first.stdout + first.stderr);
      const [line] = strip(first.stderr);
      assert.match(
        line,
        new RegExp(
          `^envoy-kvm: cannot reach ${proxy.url}: socket hang up; entries ${done}–${done + BATCH - 1} may or may not ` +
            `have been imported \\(no answer came\\), the ${done} before them were \\(${done} created, 0 replaced, ` +
            `0 skipped, 0 already expired\\); to resume: --from ${done} `,
        ),
      );
      // The database agrees: everything reported as imported is there; the batch in doubt is all or nothing.
      const stored = await storedKeys(kvm);
      const committed = done + (commitFirst ? BATCH : 0);
      assert.equal(stored.size, committed, `${kvm}: rows after the kill`);
      for (const { name, value } of entries.slice(0, committed)) assert.equal(stored.get(name), value, name);

      service = await startService();
      const resumed = await runImport(proxy.url, kvm, file, ["--from", String(done)]);
      assert.equal(resumed.code, 0, resumed.stderr);
      const again = commitFirst ? BATCH : 0;
      assert.deepEqual(strip(resumed.stdout), [
        `imported ${ENTRIES - done} entries${done === 0 ? "" : ` (entries ${done}–${ENTRIES - 1} of ${ENTRIES})`}: ` +
          `${ENTRIES - done - again} created, ${again} replaced, 0 skipped, 0 already expired`,
      ]);
      const final = await storedKeys(kvm);
      assert.deepEqual(
        [...final].sort(),
        entries.map((e) => [e.name, e.value]),
        `${kvm}: the map after the resumed import`,
      );
    } finally {
      await proxy.close();
      await service.stop();
    }
  }
  ctx.diagnostic(`${KILLS.length} kills, ${ENTRIES} entries in batches of ${BATCH}`);
  recordReliability({
    area: "faults",
    name: "service killed during a bulk import (before or after committing a batch)",
    cases: KILLS.length,
    result: "the report matches the database; --from resumes to the complete map",
  });
});
