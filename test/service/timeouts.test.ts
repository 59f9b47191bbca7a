// Slow clients (slowloris): a request whose headers or body never finish, and an idle keep-alive connection,
// lose their socket within the configured bounds instead of holding it for minutes (issue 12 #14).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { buildApp } from "../../service/app.ts";
import { loadConfig } from "../../service/config.ts";
import { createPool } from "../../service/db.ts";
import { createTestDatabase, startTestApp, type TestApp, type TestDatabase } from "./helpers.ts";

let db: TestDatabase;
let t: TestApp;
let port: number;

before(async () => {
  db = await createTestDatabase();
  t = await startTestApp(db.url, {
    KVM_HTTP_HEADERS_TIMEOUT_MS: "500",
    KVM_HTTP_REQUEST_TIMEOUT_MS: "1000",
    KVM_HTTP_KEEP_ALIVE_TIMEOUT_MS: "500",
  });
  await t.app.listen({ host: "127.0.0.1", port: 0 });
  port = (t.app.server.address() as net.AddressInfo).port;
});
after(async () => {
  await t?.close();
  await db?.drop();
});

/** Sends `text` and keeps the socket open; resolves with what the server said and when it closed. */
function holdOpen(text: string, giveUpMs = 8000): Promise<{ answer: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1", () => socket.write(text));
    let answer = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server still held the socket after ${giveUpMs} ms (answer so far: ${answer})`));
    }, giveUpMs);
    socket.on("data", (d) => (answer += d));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ answer, ms: Date.now() - started });
    });
  });
}

describe("slow and idle clients lose their socket", () => {
  test("a body that stops after 3 of 10 bytes: 408 and closed within the request timeout (+1 s)", async () => {
    const { answer, ms } = await holdOpen(
      "PUT /v1/kvms/slow/entries/k HTTP/1.1\r\nHost: kvm\r\nContent-Length: 10\r\n\r\nabc",
    );
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.ok(ms < 2500, `closed after ${ms} ms`);
  });

  test("headers that never finish: closed within the headers timeout (+1 s)", async () => {
    const { ms } = await holdOpen("GET /healthz HTTP/1.1\r\nHost: kvm\r\nX-Slow: a");
    assert.ok(ms < 2000, `closed after ${ms} ms`);
  });

  test("an idle keep-alive connection is closed after the keep-alive timeout", async () => {
    const { answer, ms } = await holdOpen("GET /healthz HTTP/1.1\r\nHost: kvm\r\n\r\n");
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.ok(ms < 2000, `closed after ${ms} ms`);
  });

  test("a request received in full may take longer than the request timeout to answer", async () => {
    // The timeout is for receiving the request; a PUT waiting on a row lock past it still gets its answer.
    const url = `http://127.0.0.1:${port}/v1/kvms/slow/entries/locked`;
    assert.equal((await fetch(url, { method: "PUT", body: "v1" })).status, 201);
    const locker = await t.pool.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM kvm_data WHERE kvm_name = 'slow' FOR UPDATE");
      const put = fetch(url, { method: "PUT", body: "v2" });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await locker.query("COMMIT");
      assert.equal((await put).status, 200);
    } finally {
      locker.release();
    }
  });

  test("the defaults bound every phase: headers 10 s, whole request 30 s, keep-alive 72 s", async () => {
    const config = loadConfig({ DATABASE_URL: db.url, KVM_INSECURE: "1", KVM_PURGE_INTERVAL_MS: "0" });
    const pool = createPool(db.url, config);
    const app = await buildApp({ config, pool, logger: false });
    try {
      await app.ready();
      assert.equal(app.server.headersTimeout, 10_000);
      assert.equal(app.server.requestTimeout, 30_000);
      assert.equal(app.server.keepAliveTimeout, 72_000);
    } finally {
      await app.close();
      await pool.end();
    }
  });
});
