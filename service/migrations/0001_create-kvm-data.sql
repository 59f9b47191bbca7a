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
-- Reverting this migration deletes every entry, so it refuses while live entries exist unless the session
-- says the loss is intended (`envoy-kvm migrate down --drop-data` sets envoy_kvm.drop_data). Nested IFs:
-- the inner SELECT is planned only when the table exists, so the down migration stays re-runnable.
DO $$
BEGIN
  IF to_regclass('kvm_data') IS NOT NULL
     AND coalesce(current_setting('envoy_kvm.drop_data', true), '') <> 'on' THEN
    IF EXISTS (SELECT 1 FROM kvm_data WHERE expires_at IS NULL OR expires_at > now()) THEN
      RAISE EXCEPTION 'kvm_data still holds entries and reverting 0001_create-kvm-data would delete them all: '
        'export the maps first (envoy-kvm kvm export), then run envoy-kvm migrate down --drop-data';
    END IF;
  END IF;
END
$$;
DROP TABLE IF EXISTS kvm_data;
DROP SEQUENCE IF EXISTS kvm_data_version_seq;
