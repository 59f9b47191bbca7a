-- Up Migration
-- Partial index over expiring rows only: the background purge reads the oldest expired rows in small
-- batches (ORDER BY expires_at LIMIT n) without scanning entries that never expire.
CREATE INDEX IF NOT EXISTS kvm_data_expires_at_idx ON kvm_data (expires_at) WHERE expires_at IS NOT NULL;

-- Down Migration
DROP INDEX IF EXISTS kvm_data_expires_at_idx;
