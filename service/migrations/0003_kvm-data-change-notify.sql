-- Up Migration
-- Every change to kvm_data is announced on the channel kvm_data_changed, so each service replica can drop
-- the entry from its in-process read cache (service/cache.ts). Payload: <kvm_name>/<hex of the key>; "*" after
-- a TRUNCATE (drop everything). Notifications are sent at commit, in commit order, and only for committed
-- transactions: https://www.postgresql.org/docs/current/sql-notify.html
-- A trigger rather than a NOTIFY in the service's own statements, so writes made by any client (imports, the
-- purge, an operator's SQL) reach the caches too. Every statement can be re-run.
CREATE OR REPLACE FUNCTION kvm_data_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('kvm_data_changed', OLD.kvm_name || '/' || encode(OLD.key, 'hex'));
    RETURN OLD;
  END IF;
  PERFORM pg_notify('kvm_data_changed', NEW.kvm_name || '/' || encode(NEW.key, 'hex'));
  IF TG_OP = 'UPDATE' AND (OLD.kvm_name <> NEW.kvm_name OR OLD.key <> NEW.key) THEN
    PERFORM pg_notify('kvm_data_changed', OLD.kvm_name || '/' || encode(OLD.key, 'hex'));
  END IF;
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION kvm_data_notify_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('kvm_data_changed', '*');
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS kvm_data_notify_change ON kvm_data;
CREATE TRIGGER kvm_data_notify_change AFTER INSERT OR UPDATE OR DELETE ON kvm_data
  FOR EACH ROW EXECUTE FUNCTION kvm_data_notify_change();

DROP TRIGGER IF EXISTS kvm_data_notify_truncate ON kvm_data;
CREATE TRIGGER kvm_data_notify_truncate AFTER TRUNCATE ON kvm_data
  FOR EACH STATEMENT EXECUTE FUNCTION kvm_data_notify_truncate();

-- Down Migration
DROP TRIGGER IF EXISTS kvm_data_notify_truncate ON kvm_data;
DROP TRIGGER IF EXISTS kvm_data_notify_change ON kvm_data;
DROP FUNCTION IF EXISTS kvm_data_notify_truncate();
DROP FUNCTION IF EXISTS kvm_data_notify_change();
