// Bearer tokens per plane, token rotation, open ops endpoints, and the configuration rules around them.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { TokenSet, bearerToken } from "../../service/auth.ts";
import { ConfigError, assertAuthConfigured, insecureWarning, loadConfig } from "../../service/config.ts";
import { recordReliability } from "../reliability/record.ts";
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

describe("rotation without downtime", () => {
  /**
   * A token rotation as operators run it over two replicas: add the new token beside the old one everywhere
   * (a rolling restart), switch the clients, then drop the old token (another rolling restart). At every step
   * each replica accepts the token the clients use at that moment; a dropped token is refused, and a data token
   * never opens the admin plane.
   */
  test("every step of a rolling rotation of both planes accepts the tokens in use; retired ones are refused", async () => {
    const phases = {
      before: { KVM_DATA_TOKENS: "d-old", KVM_ADMIN_TOKENS: "a-old" },
      overlap: { KVM_DATA_TOKENS: "d-old,d-new", KVM_ADMIN_TOKENS: "a-old,a-new" },
      after: { KVM_DATA_TOKENS: "d-new", KVM_ADMIN_TOKENS: "a-new" },
    };
    const replicas: Record<keyof typeof phases, TestApp> = {
      before: await startTestApp(db.url, { KVM_INSECURE: "0", ...phases.before }),
      overlap: await startTestApp(db.url, { KVM_INSECURE: "0", ...phases.overlap }),
      after: await startTestApp(db.url, { KVM_INSECURE: "0", ...phases.after }),
    };
    let cases = 0;
    const expect = async (replica: TestApp, token: string, plane: "data" | "admin", status: number) => {
      const url = plane === "data" ? entryUrl("rotation", "k") : "/admin/v1/kvms";
      const res = await replica.app.inject({
        method: "GET",
        url,
        headers: { authorization: `Bearer ${token}` },
      });
      // 404: the data-plane request passed authentication (the entry does not exist).
      assert.equal(res.statusCode, status, `${token} on ${plane}`);
      cases++;
    };
    try {
      // Step 1, replicas restarting one by one: clients still on the old tokens reach both kinds.
      for (const r of [replicas.before, replicas.overlap]) {
        await expect(r, "d-old", "data", 404);
        await expect(r, "a-old", "admin", 200);
        await expect(r, "a-old", "data", 404);
      }
      // Step 2, every replica overlapping: clients switch one by one, both tokens work.
      for (const token of ["d-old", "d-new"]) await expect(replicas.overlap, token, "data", 404);
      for (const token of ["a-old", "a-new"]) await expect(replicas.overlap, token, "admin", 200);
      // Step 3, replicas restarting with only the new tokens: the clients (now on them) reach both kinds.
      for (const r of [replicas.overlap, replicas.after]) {
        await expect(r, "d-new", "data", 404);
        await expect(r, "a-new", "admin", 200);
      }
      // Retired tokens are refused once gone; a data token is never an admin token.
      await expect(replicas.after, "d-old", "data", 401);
      await expect(replicas.after, "a-old", "admin", 401);
      for (const r of Object.values(replicas)) {
        await expect(r, "d-old", "admin", 401);
        await expect(r, "d-new", "admin", 401);
      }
    } finally {
      for (const r of Object.values(replicas)) await r.close();
    }
    recordReliability({
      area: "security",
      name: "token rotation without downtime (data and admin planes, rolling over replicas)",
      cases,
      result: "tokens in use accepted at every step; retired and data tokens refused on admin",
    });
  });
});

describe("operations endpoints", () => {
  test("KVM_METRICS_TOKENS: /metrics wants that token or an admin one; open without it (the default)", async () => {
    const guarded = await startTestApp(db.url, {
      KVM_INSECURE: "0",
      KVM_DATA_TOKENS: "d",
      KVM_ADMIN_TOKENS: "a",
      KVM_METRICS_TOKENS: "scrape-1,scrape-2",
    });
    const cases: [string | undefined, number][] = [
      [undefined, 401],
      ["Bearer d", 401],
      ["Bearer wrong", 401],
      ["Bearer scrape-1", 200],
      ["Bearer scrape-2", 200],
      ["Bearer a", 200],
    ];
    try {
      for (const [authorization, status] of cases) {
        const res = await guarded.app.inject({
          method: "GET",
          url: "/metrics",
          headers: authorization === undefined ? {} : { authorization },
        });
        assert.equal(res.statusCode, status, String(authorization));
        if (status === 200) assert.match(res.body, /kvm_http_requests_total/);
        else assert.equal(res.json().error, "unauthorized");
      }
      const doc = (await guarded.app.inject({ method: "GET", url: "/docs/json" })).json();
      assert.deepEqual(doc.paths["/metrics"].get.security, [{ bearer: [] }]);
    } finally {
      await guarded.close();
    }
    // The shared app has no KVM_METRICS_TOKENS: open, as the test above ("need no token") shows.
    assert.equal((await call("GET", "/metrics")).statusCode, 200);
    recordReliability({
      area: "security",
      name: "/metrics behind KVM_METRICS_TOKENS",
      cases: cases.length + 1,
      result: "401 without its token (data tokens refused), 200 with it or an admin token; open by default",
    });
  });

  test("/readyz shows the database driver's error only to an admin token", async () => {
    // Nothing listens on port 1: the driver's error names the address (ECONNREFUSED 127.0.0.1:1).
    const down = await startTestApp(
      "postgres://postgres@127.0.0.1:1/none",
      { KVM_INSECURE: "0", KVM_DATA_TOKENS: "d", KVM_ADMIN_TOKENS: "a", KVM_METRICS_TOKENS: "m" },
      { migrate: false },
    );
    const credentials = [undefined, "Bearer d", "Bearer m", "Bearer wrong", "Basic YTo="];
    try {
      for (const authorization of credentials) {
        const res = await down.app.inject({
          method: "GET",
          url: "/readyz",
          headers: authorization === undefined ? {} : { authorization },
        });
        assert.equal(res.statusCode, 503);
        assert.deepEqual(res.json(), { error: "unavailable", message: "the database is unavailable" });
        assert.doesNotMatch(res.body, /ECONNREFUSED|127\.0\.0\.1/);
      }
      const admin = await down.app.inject({
        method: "GET",
        url: "/readyz",
        headers: { authorization: "Bearer a" },
      });
      assert.match(admin.json().message, /^database unreachable: .*ECONNREFUSED/);
    } finally {
      await down.close();
    }
    recordReliability({
      area: "security",
      name: "/readyz without the database error text unless an admin token",
      cases: credentials.length + 1,
      result: "status only for anonymous, data, metrics and bad credentials; details for admin",
    });
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
