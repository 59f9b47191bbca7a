// `envoy-kvm kvm reencrypt`: rewrites every row not under the service's active key (routes/encryption.ts), in
// batches, with a progress bar on stderr. Resumable: interrupted, it is simply run again (rows already rewritten
// are not looked at twice).
import { Command, Option } from "commander";
import type { AdminClient } from "../client.ts";
import { positiveInt } from "./args.ts";
import { progressBar } from "./bulk.ts";

export function reencryptCommand(client: () => AdminClient): Command {
  return new Command("reencrypt")
    .description("rewrite stored values under the service's active encryption key (or plaintext), in batches")
    .addOption(
      new Option("--batch-size <n>", "rows per transaction (1–1000)").argParser(positiveInt).default(100),
    )
    .action(async (opts: { batchSize: number }) => {
      const c = client();
      const status = await c.encryptionStatus();
      const target = status.active_key_id === null ? "plaintext" : `key "${status.active_key_id}"`;
      const total = status.rows
        .filter((r) => r.key_id !== status.active_key_id)
        .reduce((n, r) => n + r.rows, 0);
      const totals = { rewritten: 0, failed: 0, changed: 0 };
      const failedMaps = new Set<string>();
      const bar = progressBar("reencrypt", total, "rows");
      let after: string | null = null;
      try {
        do {
          const batch = await c.reencryptBatch(after, Math.min(opts.batchSize, 1000));
          totals.rewritten += batch.rewritten;
          totals.failed += batch.failed;
          totals.changed += batch.changed;
          for (const m of batch.failed_maps) failedMaps.add(m);
          bar.increment(batch.rewritten + batch.failed + batch.changed);
          after = batch.next_token;
        } while (after !== null);
      } finally {
        bar.stop();
      }
      console.log(
        `re-encrypted ${totals.rewritten} rows to ${target}; ${totals.changed} rewritten by writers meanwhile; ` +
          `${totals.failed} could not be decrypted`,
      );
      if (totals.failed > 0) {
        throw new Error(
          `${totals.failed} rows could not be decrypted (maps: ${[...failedMaps].join(", ")}): give the service ` +
            "the key they were written with (KVM_ENCRYPTION_KEYS) and run reencrypt again",
        );
      }
    });
}
