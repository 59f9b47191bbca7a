// Values at rest: AES-256-GCM (node:crypto) with keys from KVM_ENCRYPTION_KEYS / KVM_ENCRYPTION_KEYS_FILE, or
// plaintext (the default). A stored value is iv (12 bytes) ‖ tag (16 bytes) ‖ ciphertext, and the row's key_id
// column (migration 0004) names the key; NULL = plaintext. The additional authenticated data binds the
// ciphertext to its key id, map and entry key, so a row copied onto another key or map fails to decrypt
// instead of answering another entry's value. It does not bind the version: an old ciphertext of the same
// entry, written back by someone with write access to the table, still decrypts (docs/service.md, "Security").
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** KVM_ENCRYPTION_ACTIVE_KEY=plaintext: keys kept for reading, new writes in plaintext (to decrypt a table). */
export const PLAINTEXT = "plaintext";

export interface EncryptionConfig {
  keys: Map<string, Buffer>;
  /** The key new writes use; null = plaintext writes (the keys only read older rows). */
  activeKeyId: string | null;
}

/** A row's value could not be decrypted: the message names the key id, never the key or the value. */
export class UndecryptableError extends Error {}

type Env = Record<string, string | undefined>;

/**
 * "id:key" items separated by commas or newlines; a key is 32 bytes as base64 (44 characters) or hex (64).
 * Messages name the item by position and id, never quote a key.
 */
export function parseKeyList(raw: string, source: string, fail: (message: string) => Error) {
  const keys = new Map<string, Buffer>();
  const items = raw
    .split(/[,\n\r]/)
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  items.forEach((item, i) => {
    const colon = item.indexOf(":");
    const id = colon < 0 ? "" : item.slice(0, colon);
    const material = colon < 0 ? "" : item.slice(colon + 1);
    if (!KEY_ID_PATTERN.test(id)) {
      throw fail(
        `${source}: item ${i + 1} is not <key id>:<key> (a key id is 1–64 of letters, digits, '.', '_', '-')`,
      );
    }
    const key = /^[0-9a-f]{64}$/i.test(material)
      ? Buffer.from(material, "hex")
      : /^[A-Za-z0-9+/]{43}=$/.test(material)
        ? Buffer.from(material, "base64")
        : null;
    if (key === null || key.length !== KEY_BYTES) {
      throw fail(
        `${source}: key "${id}" is not 32 bytes as base64 (44 characters) or hex (64); ` +
          "make one with: openssl rand -base64 32",
      );
    }
    if (keys.has(id)) throw fail(`${source}: key id "${id}" is given twice`);
    keys.set(id, key);
  });
  return keys;
}

/** The encryption settings, or null for plaintext mode (no keys). */
export function loadEncryptionConfig(env: Env, fail: (message: string) => Error): EncryptionConfig | null {
  const keys = parseKeyList(env.KVM_ENCRYPTION_KEYS ?? "", "KVM_ENCRYPTION_KEYS", fail);
  const file = env.KVM_ENCRYPTION_KEYS_FILE;
  if (file !== undefined && file !== "") {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw fail(`KVM_ENCRYPTION_KEYS_FILE: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
    }
    for (const [id, key] of parseKeyList(text, `KVM_ENCRYPTION_KEYS_FILE (${file})`, fail)) {
      if (keys.has(id)) throw fail(`key id "${id}" is given in KVM_ENCRYPTION_KEYS and in its _FILE`);
      keys.set(id, key);
    }
  }
  const active = env.KVM_ENCRYPTION_ACTIVE_KEY;
  if (keys.size === 0) {
    if (active !== undefined && active !== "") {
      throw fail("KVM_ENCRYPTION_ACTIVE_KEY is set but KVM_ENCRYPTION_KEYS (or its _FILE) holds no key");
    }
    return null;
  }
  if (active === undefined || active === "") return { keys, activeKeyId: keys.keys().next().value as string };
  if (active === PLAINTEXT) return { keys, activeKeyId: null };
  if (!keys.has(active)) {
    throw fail(
      `KVM_ENCRYPTION_ACTIVE_KEY is "${active}", which is not among the configured key ids (${[...keys.keys()].join(", ")})`,
    );
  }
  return { keys, activeKeyId: active };
}

/** The start-up line saying how values are stored (key ids only). */
export function encryptionNotice(config: EncryptionConfig | null): string {
  if (config === null) {
    return "values are stored in PLAINTEXT in PostgreSQL (set KVM_ENCRYPTION_KEYS to encrypt them at rest)";
  }
  const ids = [...config.keys.keys()].join(", ");
  return config.activeKeyId === null
    ? `values are written in plaintext (KVM_ENCRYPTION_ACTIVE_KEY=plaintext); keys ${ids} read older rows`
    : `values are encrypted at rest with AES-256-GCM under key "${config.activeKeyId}" (keys configured: ${ids})`;
}

function aad(keyId: string, kvm: string, key: Buffer): Buffer {
  // Neither a key id nor a map name can hold a NUL byte, so the fields can not run into each other.
  return Buffer.concat([Buffer.from(`envoy-kvm/1\0${keyId}\0${kvm}\0`, "utf8"), key]);
}

/** Seals values for storage and opens stored ones; a null config is plaintext mode. */
export class ValueCipher {
  constructor(private readonly config: EncryptionConfig | null) {}

  /** The key id new writes carry (null = plaintext). */
  get activeKeyId(): string | null {
    return this.config?.activeKeyId ?? null;
  }

  get keyIds(): string[] {
    return this.config === null ? [] : [...this.config.keys.keys()];
  }

  seal(kvm: string, key: Buffer, value: Buffer): { stored: Buffer; keyId: string | null } {
    const keyId = this.activeKeyId;
    if (keyId === null) return { stored: value, keyId: null };
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.config!.keys.get(keyId)!, iv, {
      authTagLength: TAG_BYTES,
    });
    cipher.setAAD(aad(keyId, kvm, key));
    const body = Buffer.concat([cipher.update(value), cipher.final()]);
    return { stored: Buffer.concat([iv, cipher.getAuthTag(), body]), keyId };
  }

  open(kvm: string, key: Buffer, stored: Buffer, keyId: string | null): Buffer {
    if (keyId === null) return stored;
    const secret = this.config?.keys.get(keyId);
    if (secret === undefined) {
      throw new UndecryptableError(
        `an entry of map "${kvm}" is encrypted with key "${keyId}", which this service does not have: ` +
          "add it to KVM_ENCRYPTION_KEYS",
      );
    }
    if (stored.length < IV_BYTES + TAG_BYTES) throw this.failed(kvm, keyId);
    try {
      const decipher = createDecipheriv("aes-256-gcm", secret, stored.subarray(0, IV_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(aad(keyId, kvm, key));
      decipher.setAuthTag(stored.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(stored.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    } catch {
      throw this.failed(kvm, keyId);
    }
  }

  private failed(kvm: string, keyId: string): UndecryptableError {
    return new UndecryptableError(
      `an entry of map "${kvm}" does not decrypt with key "${keyId}": the key under that id is not the one it ` +
        "was written with, or the row was altered or copied from another entry",
    );
  }
}
