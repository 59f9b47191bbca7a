-- Up Migration
-- kvm_data is the table name the Kong key-value-map-operations plugin used. Every statement is guarded
-- (IF NOT EXISTS) so the migration can be re-run over a database that already has it.

-- Versions come from one sequence, not a per-row counter: a key that is deleted and re-created never
-- reuses a version, so a stale If-Match can not succeed against the new entry (no ABA).
CREATE SEQUENCE IF NOT EXISTS kvm_data_version_seq AS bigint;

CREATE TABLE IF NOT EXISTS kvm_data (
  -- COLLATE "C": map names are ASCII; byte order keeps keyset pagination of maps stable across locales.
  kvm_name text COLLATE "C" NOT NULL,
  -- Keys and values are arbitrary bytes (keys arrive percent-encoded in the path).
  key bytea NOT NULL,
  value bytea NOT NULL,
  -- NULL = never expires. Rows past expires_at are invisible to every read before the purge deletes them.
  expires_at timestamptz,
  version bigint NOT NULL DEFAULT nextval('kvm_data_version_seq'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kvm_name, key)
);

ALTER SEQUENCE kvm_data_version_seq OWNED BY kvm_data.version;

-- Down Migration
DROP TABLE IF EXISTS kvm_data;
DROP SEQUENCE IF EXISTS kvm_data_version_seq;
