// Bearer tokens per plane, token rotation, open ops endpoints, and the configuration rules around them.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { TokenSet, bearerToken } from "../../service/auth.ts";
import { ConfigError, assertAuthConfigured, insecureWarning, loadConfig } from "../../service/config.ts";
import { createTestDatabase, entryUrl, startTestApp, type TestApp, type TestDatabase } from "./helpers.ts";

let db: TestDatabase;
let t: TestApp;

before(async () => {
  db = await createTestDatabase();
  t = await startTestApp(db.url, {
    KVM_INSECURE: "0",
    KVM_DATA_TOKENS: "data-old, data-new",
    KVM_ADMIN_TOKENS: "admin-1",
  });
});
after(async () => {
  await t?.close();
  await db?.drop();
});

const call = (method: "GET" | "PUT", url: string, authorization?: string) =>
  t.app.inject({
    method,
    url,
    payload: method === "PUT" ? (url.startsWith("/admin") ? { value: "v" } : "v") : undefined,
    headers: authorization === undefined ? {} : { authorization },
  });

describe("data plane", () => {
  test("401 without a token, with a JSON error and WWW-Authenticate", async () => {
    const res = await call("GET", entryUrl("auth", "k"));
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers["www-authenticate"], 'Bearer realm="envoy-kvm"');
    assert.deepEqual(res.json(), {
      error: "unauthorized",
      message: "missing bearer token (Authorization: Bearer <token>)",
    });
  });

  test("401 with a wrong token or another scheme", async () => {
    for (const header of ["Bearer nope", "Bearer data-old2", "Basic ZGF0YS1vbGQ6", "data-old", "Bearer "]) {
      const res = await call("PUT", entryUrl("auth", "k"), header);
      assert.equal(res.statusCode, 401, header);
      assert.equal(res.json().error, "unauthorized");
    }
    assert.equal((await call("GET", entryUrl("auth", "k"), "Bearer data-new")).statusCode, 404);
  });

  test("both tokens of a rotation work, and the admin token works too", async () => {
    assert.equal((await call("PUT", entryUrl("auth", "rot"), "Bearer data-old")).statusCode, 201);
    assert.equal((await call("PUT", entryUrl("auth", "rot"), "bearer data-new")).statusCode, 200);
    assert.equal((await call("GET", entryUrl("auth", "rot"), "Bearer admin-1")).statusCode, 200);
  });
});

describe("admin plane", () => {
  test("only admin tokens", async () => {
    assert.equal((await call("GET", "/admin/v1/kvms")).statusCode, 401);
    assert.equal((await call("GET", "/admin/v1/kvms", "Bearer data-old")).statusCode, 401);
    assert.equal((await call("PUT", "/admin/v1/kvms/auth/entries/k", "Bearer data-new")).statusCode, 401);
    assert.equal((await call("GET", "/admin/v1/kvms", "Bearer admin-1")).statusCode, 200);
    assert.equal((await call("PUT", "/admin/v1/kvms/auth/entries/k", "Bearer admin-1")).statusCode, 201);
  });

  test("health, readiness, metrics and docs need no token", async () => {
    for (const url of ["/healthz", "/readyz", "/metrics", "/docs/json"]) {
      assert.equal((await call("GET", url)).statusCode, 200, url);
    }
    const doc = (await call("GET", "/docs/json")).json();
    const entry = doc.paths["/v1/kvms/{kvm}/entries/{key}"];
    assert.deepEqual(Object.keys(entry.put.requestBody.content), ["*/*"]);
    assert.deepEqual(Object.keys(entry.get.responses["200"].content), ["application/octet-stream"]);
    assert.deepEqual(Object.keys(entry.get.responses["200"].headers), ["etag", "x-kvm-expires-at"]);
    assert.ok(doc.paths["/admin/v1/kvms/{kvm}/import"].post);
  });
});

describe("tokens", () => {
  test("TokenSet matches exactly, in any position of the list", () => {
    const set = new TokenSet(["alpha", "beta"]);
    assert.equal(set.matches("alpha"), true);
    assert.equal(set.matches("beta"), true);
    assert.equal(set.matches("alph"), false);
    assert.equal(set.matches("alphaa"), false);
    assert.equal(set.matches(""), false);
  });

  test("bearerToken parses the Authorization header", () => {
    assert.equal(bearerToken("Bearer abc"), "abc");
    assert.equal(bearerToken("bearer   abc  "), "abc");
    assert.equal(bearerToken("Bearer a b"), null);
    assert.equal(bearerToken("Basic abc"), null);
    assert.equal(bearerToken(undefined), null);
  });
});

describe("configuration", () => {
  const url = "postgres://db/kvm";

  test("with DATABASE_URL and no tokens the service refuses to start, naming the variable", () => {
    assert.throws(
      () => assertAuthConfigured(loadConfig({ DATABASE_URL: url })),
      (err: unknown) =>
        err instanceof ConfigError && /KVM_DATA_TOKENS is not set.*KVM_INSECURE=1/.test(err.message),
    );
    assert.throws(
      () => assertAuthConfigured(loadConfig({ DATABASE_URL: url, KVM_DATA_TOKENS: "d" })),
      /KVM_ADMIN_TOKENS is not set/,
    );
    assert.doesNotThrow(() =>
      assertAuthConfigured(loadConfig({ DATABASE_URL: url, KVM_DATA_TOKENS: "d", KVM_ADMIN_TOKENS: "a" })),
    );
  });

  test("KVM_INSECURE=1, or no DATABASE_URL (embedded default), is insecure local mode on loopback", () => {
    const insecure = loadConfig({ DATABASE_URL: url, KVM_INSECURE: "1" });
    assert.equal(insecure.insecure, true);
    assert.equal(insecure.host, "127.0.0.1");
    assert.doesNotThrow(() => assertAuthConfigured(insecure));
    const embedded = loadConfig({}, "/srv/app");
    assert.equal(embedded.insecure, true);
    assert.equal(embedded.databaseUrl, null);
    assert.equal(embedded.embeddedDataDir, "/srv/app/.data/postgres");
    assert.equal(
      loadConfig({ DATABASE_URL: url, KVM_DATA_TOKENS: "d", KVM_ADMIN_TOKENS: "a" }).host,
      "0.0.0.0",
    );
  });

  test("the embedded default listens beyond loopback without tokens only with KVM_INSECURE=1", () => {
    for (const host of ["127.0.0.1", "localhost", "::1"]) {
      assert.doesNotThrow(() => assertAuthConfigured(loadConfig({ HOST: host })), host);
    }
    assert.throws(
      () => assertAuthConfigured(loadConfig({ HOST: "0.0.0.0" })),
      (err: unknown) =>
        err instanceof ConfigError &&
        /^HOST=0.0.0.0 would expose planes without tokens .*KVM_INSECURE=1/.test(err.message),
    );
    assert.throws(
      () => assertAuthConfigured(loadConfig({ HOST: "0.0.0.0", KVM_DATA_TOKENS: "d" })),
      /HOST=0.0.0.0 would expose/,
    );
    assert.doesNotThrow(() => assertAuthConfigured(loadConfig({ HOST: "0.0.0.0", KVM_INSECURE: "1" })));
    assert.doesNotThrow(() =>
      assertAuthConfigured(loadConfig({ HOST: "0.0.0.0", KVM_DATA_TOKENS: "d", KVM_ADMIN_TOKENS: "a" })),
    );
  });

  test("the insecure start-up warning names the open planes, and is silent when none is open", () => {
    assert.equal(
      insecureWarning(loadConfig({})),
      "INSECURE local mode: /v1 (data plane) and /admin/v1 accept requests without a token",
    );
    assert.equal(
      insecureWarning(loadConfig({ KVM_ADMIN_TOKENS: "a" })),
      "INSECURE local mode: /v1 (data plane) accepts requests without a token",
    );
    assert.equal(insecureWarning(loadConfig({ KVM_DATA_TOKENS: "d", KVM_ADMIN_TOKENS: "a" })), null);
    assert.equal(
      insecureWarning(
        loadConfig({ DATABASE_URL: url, KVM_INSECURE: "1", KVM_DATA_TOKENS: "d", KVM_ADMIN_TOKENS: "a" }),
      ),
      "KVM_INSECURE=1 is set but both planes have tokens: they are enforced",
    );
    assert.equal(
      insecureWarning(loadConfig({ DATABASE_URL: url, KVM_DATA_TOKENS: "d", KVM_ADMIN_TOKENS: "a" })),
      null,
    );
  });

  test("defaults and parsed values", () => {
    const c = loadConfig({ DATABASE_URL: url, KVM_DATA_TOKENS: " a ,b,, c ", KVM_MAX_VALUE_BYTES: "2048" });
    assert.equal(c.port, 8081);
    assert.deepEqual(c.dataTokens, ["a", "b", "c"]);
    assert.equal(c.maxValueBytes, 2048);
    assert.equal(loadConfig({ DATABASE_URL: url }).maxValueBytes, 1024 * 1024);
    assert.equal(loadConfig({ DATABASE_URL: url, PORT: "9000" }).port, 9000);
  });

  test("tokens can come from files (one per line or comma-separated)", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-tokens-"));
    writeFileSync(path.join(dir, "data"), "one\ntwo,three\n");
    const c = loadConfig({
      DATABASE_URL: url,
      KVM_DATA_TOKENS: "env",
      KVM_DATA_TOKENS_FILE: path.join(dir, "data"),
    });
    assert.deepEqual(c.dataTokens, ["env", "one", "two", "three"]);
    assert.throws(
      () => loadConfig({ DATABASE_URL: url, KVM_ADMIN_TOKENS_FILE: path.join(dir, "missing") }),
      /KVM_ADMIN_TOKENS_FILE: cannot read/,
    );
  });

  test("bad numbers and flags are configuration errors naming the variable", () => {
    for (const [name, value, message] of [
      ["PORT", "http", /PORT must be an integer, got "http"/],
      ["PORT", "70000", /PORT must be between 0 and 65535/],
      ["KVM_MAX_VALUE_BYTES", "0", /KVM_MAX_VALUE_BYTES must be between/],
      ["KVM_INSECURE", "yes", /KVM_INSECURE must be 1 or 0/],
    ] as const) {
      assert.throws(() => loadConfig({ DATABASE_URL: url, [name]: value }), message);
    }
  });
});
