-- Up Migration
-- Encryption at rest (service/encryption.ts): the id of the key a row's value is encrypted with; NULL = the
-- value is plaintext. Existing rows stay plaintext until `envoy-kvm kvm reencrypt` rewrites them. Re-runnable.
ALTER TABLE kvm_data ADD COLUMN IF NOT EXISTS key_id text;

-- Down Migration
-- Without key_id an encrypted value would read as its ciphertext, so reverting refuses while any row is
-- encrypted. Nested IFs: the inner SELECT is planned only when the column exists (re-runnable).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM information_schema.columns
             WHERE table_name = 'kvm_data' AND column_name = 'key_id' AND table_schema = current_schema()) THEN
    IF EXISTS (SELECT 1 FROM kvm_data WHERE key_id IS NOT NULL) THEN
      RAISE EXCEPTION 'kvm_data holds encrypted values and reverting 0004_kvm-data-key-id would make them unreadable: '
        'decrypt them first (KVM_ENCRYPTION_ACTIVE_KEY=plaintext, then envoy-kvm kvm reencrypt)';
    END IF;
  END IF;
END
$$;
ALTER TABLE kvm_data DROP COLUMN IF EXISTS key_id;
