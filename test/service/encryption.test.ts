// Encryption of values at rest (service/encryption.ts): configuration, what lands in PostgreSQL, rows that must
// not decrypt (swapped, unknown or wrong key), key rotation with re-encryption through the API and the CLI,
// and export / import / the read cache over encrypted rows.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError, loadConfig } from "../../service/config.ts";
import { encryptionNotice } from "../../service/encryption.ts";
import { recordReliability } from "../reliability/record.ts";
import {
  cacheSynced,
  createTestDatabase,
  entryUrl,
  startTestApp,
  type TestApp,
  type TestDatabase,
  logCapture,
} from "./helpers.ts";

const K1 = randomBytes(32);
const K2 = randomBytes(32);
const K1_WRONG = randomBytes(32);
const keys = (...items: [string, Buffer][]) =>
  items.map(([id, k]) => `${id}:${k.toString("base64")}`).join(",");

let db: TestDatabase;
const apps: TestApp[] = [];
const logLines: string[] = [];

before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  for (const t of apps) await t.close();
  await db?.drop();
});

/** An app on the shared database with these encryption settings; its log lines are kept in logLines. */
async function appWith(env: Record<string, string>): Promise<TestApp> {
  const { stream } = logCapture(logLines);
  const t = await startTestApp(
    db.url,
    { KVM_CACHE_MAX_BYTES: "0", ...env },
    { logger: { level: "info", stream } },
  );
  apps.push(t);
  return t;
}

const put = (t: TestApp, kvm: string, key: string, value: string) =>
  t.app.inject({
    method: "PUT",
    url: entryUrl(kvm, key),
    payload: value,
    headers: { "content-type": "text/plain" },
  });
const get = (t: TestApp, kvm: string, key: string) =>
  t.app.inject({ method: "GET", url: entryUrl(kvm, key) });
const stored = async (t: TestApp, kvm: string, key: string) =>
  (
    await t.pool.query<{ value: Buffer; key_id: string | null }>(
      "SELECT value, key_id FROM kvm_data WHERE kvm_name = $1 AND key = $2",
      [kvm, Buffer.from(key)],
    )
  ).rows[0];

/** Re-encryption passes through the API until next_token is null; the summed counts and the batches taken. */
async function reencryptAll(t: TestApp, limit: number) {
  const totals = { rewritten: 0, failed: 0, changed: 0, batches: 0 };
  let after: string | null = null;
  do {
    const query: string = after === null ? `limit=${limit}` : `limit=${limit}&after=${after}`;
    const res = await t.app.inject({ method: "POST", url: `/admin/v1/encryption/reencrypt?${query}` });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    totals.rewritten += body.rewritten;
    totals.failed += body.failed;
    totals.changed += body.changed;
    totals.batches++;
    after = body.next_token;
  } while (after !== null);
  return totals;
}

describe("configuration", () => {
  test("keys as base64 or hex, the first active unless KVM_ENCRYPTION_ACTIVE_KEY says; plaintext by default", () => {
    const base = { DATABASE_URL: "postgres://x@h/d", KVM_INSECURE: "1" };
    assert.equal(loadConfig(base).encryption, null);
    const two = loadConfig({
      ...base,
      KVM_ENCRYPTION_KEYS: `k2:${K2.toString("hex")},\nk1:${K1.toString("base64")}`,
    });
    assert.deepEqual([...two.encryption!.keys.keys()], ["k2", "k1"]);
    assert.equal(two.encryption!.activeKeyId, "k2");
    assert.deepEqual(two.encryption!.keys.get("k1"), K1);
    const dir = mkdtempSync(path.join(tmpdir(), "kvm-keys-"));
    writeFileSync(path.join(dir, "keys"), `${keys(["old", K1])}\n`);
    const fromFile = loadConfig({
      ...base,
      KVM_ENCRYPTION_KEYS: keys(["new", K2]),
      KVM_ENCRYPTION_KEYS_FILE: path.join(dir, "keys"),
      KVM_ENCRYPTION_ACTIVE_KEY: "old",
    });
    assert.equal(fromFile.encryption!.activeKeyId, "old");
    const decrypting = loadConfig({
      ...base,
      KVM_ENCRYPTION_KEYS: keys(["k1", K1]),
      KVM_ENCRYPTION_ACTIVE_KEY: "plaintext",
    });
    assert.equal(decrypting.encryption!.activeKeyId, null);
  });

  test("bad key settings are configuration errors that never quote key material", () => {
    const base = { DATABASE_URL: "postgres://x@h/d", KVM_INSECURE: "1" };
    const secret = K1.toString("base64").slice(0, 40);
    const cases: [Record<string, string>, RegExp][] = [
      [
        { KVM_ENCRYPTION_KEYS: `k1:${secret}` },
        /KVM_ENCRYPTION_KEYS: key "k1" is not 32 bytes .*openssl rand -base64 32/,
      ],
      [{ KVM_ENCRYPTION_KEYS: secret }, /KVM_ENCRYPTION_KEYS: item 1 is not <key id>:<key>/],
      [{ KVM_ENCRYPTION_KEYS: `bad id:${K1.toString("base64")}` }, /item 1 is not <key id>:<key>/],
      [{ KVM_ENCRYPTION_KEYS: keys(["a", K1], ["a", K2]) }, /key id "a" is given twice/],
      [
        { KVM_ENCRYPTION_KEYS: keys(["a", K1]), KVM_ENCRYPTION_ACTIVE_KEY: "b" },
        /ACTIVE_KEY is "b", which is not among .*\(a\)/,
      ],
      [{ KVM_ENCRYPTION_ACTIVE_KEY: "a" }, /ACTIVE_KEY is set but KVM_ENCRYPTION_KEYS .* holds no key/],
      [
        { KVM_ENCRYPTION_KEYS_FILE: "/nonexistent/keys" },
        /KVM_ENCRYPTION_KEYS_FILE: cannot read \/nonexistent\/keys: ENOENT/,
      ],
    ];
    for (const [env, message] of cases) {
      assert.throws(
        () => loadConfig({ ...base, ...env }),
        (err: Error) =>
          err instanceof ConfigError &&
          message.test(err.message) &&
          !err.message.includes(secret.slice(0, 12)),
        JSON.stringify(Object.keys(env)),
      );
    }
    recordReliability({
      area: "security",
      name: "encryption key settings refused without quoting key material",
      cases: cases.length,
      result: "each a configuration error naming the variable; no key in any message",
    });
  });

  test("the start-up line says plaintext by default, and names key ids (never keys) otherwise", () => {
    assert.match(encryptionNotice(null), /^values are stored in PLAINTEXT .*KVM_ENCRYPTION_KEYS/);
    const line = encryptionNotice({
      keys: new Map([
        ["k1", K1],
        ["k2", K2],
      ]),
      activeKeyId: "k2",
    });
    assert.equal(
      line,
      'values are encrypted at rest with AES-256-GCM under key "k2" (keys configured: k1, k2)',
    );
    assert.match(
      encryptionNotice({ keys: new Map([["k1", K1]]), activeKeyId: null }),
      /written in plaintext .*keys k1 read/,
    );
  });
});

describe("values at rest", () => {
  test("a value is stored as AES-256-GCM ciphertext under the active key id and reads back as written", async () => {
    const t = await appWith({ KVM_ENCRYPTION_KEYS: keys(["k1", K1]) });
    const value = "the secret value ".repeat(4);
    assert.equal((await put(t, "enc", "a", value)).statusCode, 201);
    const row = await stored(t, "enc", "a");
    assert.equal(row.key_id, "k1");
    assert.equal(row.value.length, Buffer.byteLength(value) + 28);
    assert.equal(row.value.includes(Buffer.from("secret")), false);
    const res = await get(t, "enc", "a");
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, value);
    // Two writes of one value never store the same bytes (a fresh IV each time).
    await put(t, "enc", "a", value);
    assert.notDeepEqual((await stored(t, "enc", "a")).value, row.value);
  });

  test("a row copied onto another key or map, a wrong key under the id, or a missing key: 500 undecryptable, no garbage", async () => {
    const t = await appWith({ KVM_ENCRYPTION_KEYS: keys(["k1", K1]) });
    await put(t, "swap", "a", "value-of-a");
    await put(t, "swap", "b", "value-of-b");
    await put(t, "swap2", "a", "other-map");
    await t.pool.query(
      `UPDATE kvm_data SET value = (SELECT value FROM kvm_data WHERE kvm_name = 'swap' AND key = 'a')
       WHERE kvm_name = 'swap' AND key = 'b' OR kvm_name = 'swap2' AND key = 'a'`,
    );
    const answers = [await get(t, "swap", "b"), await get(t, "swap2", "a")];
    const wrongKey = await appWith({ KVM_ENCRYPTION_KEYS: keys(["k1", K1_WRONG]) });
    answers.push(await get(wrongKey, "swap", "a"));
    const otherKey = await appWith({ KVM_ENCRYPTION_KEYS: keys(["k2", K2]) });
    const plaintext = await appWith({});
    answers.push(await get(otherKey, "swap", "a"), await get(plaintext, "swap", "a"));
    const adminRead = await plaintext.app.inject({ method: "GET", url: "/admin/v1/kvms/swap/entries/a" });
    const list = await wrongKey.app.inject({ method: "GET", url: "/admin/v1/kvms/swap/entries" });
    answers.push(adminRead, list);
    for (const res of answers) {
      assert.equal(res.statusCode, 500, res.body);
      assert.equal(res.json().error, "undecryptable");
      assert.doesNotMatch(res.body, /value-of|other-map/);
    }
    assert.match(
      answers[0].json().message,
      /^an entry of map "swap" does not decrypt with key "k1": .*copied/,
    );
    assert.match(answers[3].json().message, /encrypted with key "k1", which this service does not have/);
    // The right key still reads the untouched row.
    assert.equal((await get(t, "swap", "a")).body, "value-of-a");
    const secrets = [K1, K2, K1_WRONG].flatMap((k) => [k.toString("base64"), k.toString("hex")]);
    const logged = logLines.join("");
    assert.match(logged, /stored value can not be decrypted/);
    for (const s of [...secrets, "value-of-a", "value-of-b", "other-map"])
      assert.equal(logged.includes(s), false, s);
    recordReliability({
      area: "security",
      name: "encrypted rows swapped, or read with a wrong, unknown or no key",
      cases: answers.length,
      result: "500 undecryptable naming the key id; no value, no garbage, no key in answers or logs",
    });
  });

  test("export writes plaintext values to the admin caller; import into an encrypted service encrypts", async () => {
    const t = await appWith({ KVM_ENCRYPTION_KEYS: keys(["k1", K1]) });
    await put(t, "exp", "x", "plain-x");
    const exported = await t.app.inject({ method: "GET", url: "/admin/v1/kvms/exp/export?all=true" });
    assert.deepEqual(exported.json(), {
      keyValueEntries: [{ name: "x", value: "plain-x" }],
      nextPageToken: "",
    });
    const imported = await t.app.inject({
      method: "POST",
      url: "/admin/v1/kvms/imp/import",
      payload: exported.json(),
    });
    assert.equal(imported.json().created, 1);
    assert.equal((await stored(t, "imp", "x")).key_id, "k1");
    assert.equal((await get(t, "imp", "x")).body, "plain-x");
  });
});

describe("key rotation", () => {
  test("a new active key writes, the old one still reads; reencrypt moves every row (plaintext ones too) in batches", async () => {
    const old = await appWith({ KVM_ENCRYPTION_KEYS: keys(["r1", K1]) });
    for (let i = 0; i < 7; i++) await put(old, "rot", `k${i}`, `v${i}`);
    const legacy = await appWith({});
    await put(legacy, "rot", "plain", "was-plaintext");
    const rotated = await appWith({ KVM_ENCRYPTION_KEYS: keys(["r2", K2], ["r1", K1]) });
    await put(rotated, "rot", "k0", "v0-new");
    assert.equal((await stored(rotated, "rot", "k0")).key_id, "r2");
    assert.equal((await get(rotated, "rot", "k1")).body, "v1");
    assert.equal((await get(rotated, "rot", "plain")).body, "was-plaintext");

    const status = await rotated.app.inject({ method: "GET", url: "/admin/v1/encryption" });
    const rotRows = (
      await rotated.pool.query("SELECT count(*)::int AS n FROM kvm_data WHERE kvm_name <> 'rot'")
    ).rows[0].n;
    assert.equal(status.json().mode, "aes-256-gcm");
    assert.equal(status.json().active_key_id, "r2");
    assert.deepEqual(status.json().configured_key_ids, ["r2", "r1"]);
    // Earlier tests' rows (other maps) are on the same database: only this map's are counted exactly here.
    const byKey = Object.fromEntries(
      status.json().rows.map((r: { key_id: string | null; rows: number }) => [r.key_id, r.rows]),
    );
    assert.equal(byKey.r2, 1);

    // A wrong-key row elsewhere (from the test above) fails and is left as it is; the pass goes on.
    const totals = await reencryptAll(rotated, 3);
    assert.ok(totals.batches >= 3);
    const left = (
      await rotated.pool.query("SELECT count(*)::int AS n FROM kvm_data WHERE key_id IS DISTINCT FROM 'r2'")
    ).rows[0].n;
    assert.equal(left, totals.failed);
    assert.equal(totals.rewritten + totals.failed + 1, rotRows + 8);
    // Only the new key is needed now for this map: the old one can go.
    const onlyNew = await appWith({ KVM_ENCRYPTION_KEYS: keys(["r2", K2]) });
    for (let i = 1; i < 7; i++) assert.equal((await get(onlyNew, "rot", `k${i}`)).body, `v${i}`);
    assert.equal((await get(onlyNew, "rot", "plain")).body, "was-plaintext");
    // Versions did not move (the value did not change), so a client's If-Match still holds.
    const cas = await onlyNew.app.inject({
      method: "PUT",
      url: entryUrl("rot", "k1"),
      payload: "v1-cas",
      headers: {
        "if-match": (await get(onlyNew, "rot", "k1")).headers.etag as string,
        "content-type": "text/plain",
      },
    });
    assert.equal(cas.statusCode, 200);
    recordReliability({
      area: "security",
      name: "key rotation: new key active, old rows read, re-encrypted in batches",
      cases: 8,
      result: "every row readable throughout and under the new key afterwards; versions kept",
    });
  });

  test("a replica's read cache, fed by the change log, serves the right value across a re-encryption", async () => {
    const cached = await appWith({
      KVM_ENCRYPTION_KEYS: keys(["c1", K1], ["c2", K2]),
      KVM_CACHE_MAX_BYTES: "1048576",
    });
    const rotator = await appWith({ KVM_ENCRYPTION_KEYS: keys(["c2", K2], ["c1", K1]) });
    await put(cached, "cached", "k", "cached-value");
    assert.equal((await get(cached, "cached", "k")).body, "cached-value");
    assert.equal((await get(cached, "cached", "k")).body, "cached-value");
    const before = { ...cached.app.kvmCache.stats };
    assert.ok(before.hit >= 1);
    await reencryptAll(rotator, 100);
    assert.equal((await stored(cached, "cached", "k")).key_id, "c2");
    await cacheSynced(cached.pool);
    assert.equal((await get(cached, "cached", "k")).body, "cached-value");
    // The rewrite was logged as a change: this replica read the row again (now under c2) rather than its copy.
    assert.ok(cached.app.kvmCache.stats.invalidation > before.invalidation);
    assert.ok(cached.app.kvmCache.stats.miss > before.miss);
  });

  test("KVM_ENCRYPTION_ACTIVE_KEY=plaintext with the keys kept: a pass decrypts every row, a second finds none", async () => {
    const t = await appWith({
      KVM_ENCRYPTION_KEYS: keys(["p1", K1]),
      KVM_ENCRYPTION_ACTIVE_KEY: "plaintext",
    });
    await t.pool.query("DELETE FROM kvm_data");
    const enc = await appWith({ KVM_ENCRYPTION_KEYS: keys(["p1", K1]) });
    for (let i = 0; i < 25; i++) await put(enc, "dec", `k${i}`, `v${i}`);
    assert.deepEqual(await reencryptAll(t, 10), { rewritten: 25, failed: 0, changed: 0, batches: 3 });
    const plain = await t.pool.query("SELECT count(*)::int AS n FROM kvm_data WHERE key_id IS NULL");
    assert.equal(plain.rows[0].n, 25);
    assert.equal((await stored(t, "dec", "k3")).value.toString(), "v3");
    assert.equal((await get(t, "dec", "k3")).body, "v3");
    // Again, as after an interruption: nothing is left to do.
    assert.deepEqual(await reencryptAll(t, 10), { rewritten: 0, failed: 0, changed: 0, batches: 1 });
  });
});
