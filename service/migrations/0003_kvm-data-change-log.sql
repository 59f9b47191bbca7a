-- Up Migration
-- The change log the service replicas' read caches follow (service/cache.ts): every change to kvm_data, by
-- any client (the service, an import, the purge, an operator's SQL), appends the map name, the key and the
-- writing transaction's id. A replica reads the rows of transactions at or above its previous snapshot's xmin.
-- UNLOGGED: no WAL for the log (a crash empties it, and also drops every replica's connection, which makes
-- them start afresh). Not NOTIFY: notifying transactions commit one at a time (see service/cache.ts).
-- Every statement can be re-run.
CREATE UNLOGGED TABLE IF NOT EXISTS kvm_changes (
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  kvm_name text COLLATE "C" NOT NULL,
  -- NULL: every entry (TRUNCATE).
  key bytea
);
CREATE INDEX IF NOT EXISTS kvm_changes_xid_idx ON kvm_changes (xid);

CREATE OR REPLACE FUNCTION kvm_data_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO kvm_changes (kvm_name, key) VALUES (OLD.kvm_name, OLD.key);
    RETURN OLD;
  END IF;
  INSERT INTO kvm_changes (kvm_name, key) VALUES (NEW.kvm_name, NEW.key);
  IF TG_OP = 'UPDATE' AND (OLD.kvm_name <> NEW.kvm_name OR OLD.key <> NEW.key) THEN
    INSERT INTO kvm_changes (kvm_name, key) VALUES (OLD.kvm_name, OLD.key);
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION kvm_data_log_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO kvm_changes (kvm_name, key) VALUES ('', NULL);
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS kvm_data_log_change ON kvm_data;
CREATE TRIGGER kvm_data_log_change AFTER INSERT OR UPDATE OR DELETE ON kvm_data
  FOR EACH ROW EXECUTE FUNCTION kvm_data_log_change();

DROP TRIGGER IF EXISTS kvm_data_log_truncate ON kvm_data;
CREATE TRIGGER kvm_data_log_truncate AFTER TRUNCATE ON kvm_data
  FOR EACH STATEMENT EXECUTE FUNCTION kvm_data_log_truncate();

-- Down Migration
DROP TRIGGER IF EXISTS kvm_data_log_truncate ON kvm_data;
DROP TRIGGER IF EXISTS kvm_data_log_change ON kvm_data;
DROP FUNCTION IF EXISTS kvm_data_log_truncate();
DROP FUNCTION IF EXISTS kvm_data_log_change();
DROP TABLE IF EXISTS kvm_changes;
