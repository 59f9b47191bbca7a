// SQL fragments and the data plane's two hot statements, shared by the repository and the benchmark's raw
// PostgreSQL baseline (bench/lib/pg-load.ts), which must run exactly what the service runs.

/** A row is live until its expiry, judged by the database's clock. */
export const LIVE = "(expires_at IS NULL OR expires_at > now())";
export const MS = (column: string) => `floor(extract(epoch FROM ${column}) * 1000)::float8`;
export const EXPIRY_FROM_TTL =
  "CASE WHEN $4::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $4::float8) END";

/** The data plane's read: the columns a GET answers with (value, etag version, expiry) and the value's key id. */
export const GET_ENTRY_SQL = `SELECT value, key_id, version::float8 AS version, ${MS("expires_at")} AS expires_at_ms
  FROM kvm_data WHERE kvm_name = $1 AND key = $2 AND ${LIVE}`;

// What an upsert does to an existing row, and what it answers: shared by the one-row and the many-row statement.
const UPSERT_CONFLICT = `ON CONFLICT (kvm_name, key) DO UPDATE
    SET value = EXCLUDED.value, key_id = EXCLUDED.key_id, expires_at = EXCLUDED.expires_at,
        version = nextval('kvm_data_version_seq'), updated_at = now(),
        created_at = CASE WHEN d.expires_at <= now() THEN now() ELSE d.created_at END
  RETURNING (xmax = 0 OR created_at = now()) AS created, version::float8 AS version,
    ${MS("expires_at")} AS expires_at_ms`;

/** An unconditional PUT (see KvmRepository.upsert); $5 is the value's key id (null = plaintext). */
export const UPSERT_ENTRY_SQL = `INSERT INTO kvm_data AS d (kvm_name, key, value, expires_at, key_id)
  VALUES ($1, $2, $3, ${EXPIRY_FROM_TTL}, $5)
  ${UPSERT_CONFLICT}`;

/**
 * UPSERT_ENTRY_SQL for many rows at once (service/upsert-batcher.ts): $1…$5 are arrays of map names, keys, values,
 * TTLs and key ids, one element per row, distinct keys. RETURNING names each row's map and key, since the order
 * of RETURNING rows is not promised.
 */
export const UPSERT_ENTRIES_SQL = `INSERT INTO kvm_data AS d (kvm_name, key, value, expires_at, key_id)
  SELECT r.kvm_name, r.key, r.value,
    CASE WHEN r.ttl IS NULL THEN NULL ELSE now() + make_interval(secs => r.ttl) END, r.key_id
  FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::float8[], $5::text[]) AS r(kvm_name, key, value, ttl, key_id)
  ${UPSERT_CONFLICT}, d.kvm_name, d.key`;
