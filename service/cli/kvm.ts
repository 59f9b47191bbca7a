// `envoy-kvm kvm …`: the admin API from the command line. Entry commands here; import / export in bulk.ts.
import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import { AdminClient } from "../client.ts";
import { nonNegativeInt, readStdin } from "./args.ts";
import { exportCommand, importCommand } from "./bulk.ts";
import { reencryptCommand } from "./reencrypt.ts";

export const TOKEN_VARIABLE = "KVM_ADMIN_TOKEN";

interface PutFlags {
  file?: string;
  ttl?: number;
  ifAbsent?: boolean;
  ifVersion?: string;
}

export function kvmCommand(): Command {
  const kvm = new Command("kvm")
    .description("talk to a running service's admin API")
    .addOption(new Option("--url <url>", "service base URL").env("KVM_URL").default("http://127.0.0.1:8081"))
    .addOption(new Option("--token <token>", "admin bearer token").env(TOKEN_VARIABLE));
  const client = () => {
    const opts = kvm.opts<{ url: string; token?: string }>();
    // An empty KVM_ADMIN_TOKEN is no token (the 401 then says how to supply one).
    return new AdminClient(opts.url, opts.token === "" ? undefined : opts.token);
  };
  const keyBytes = (key: string) => Buffer.from(key, "utf8");

  kvm
    .command("get <kvm> <key>")
    .description("print an entry's raw value to stdout")
    .action(async (name: string, key: string) => {
      const entry = await client().getEntry(name, keyBytes(key));
      process.stdout.write(
        entry.value !== undefined ? entry.value : Buffer.from(entry.value_base64 ?? "", "base64"),
      );
    });

  kvm
    .command("put <kvm> <key> [value]")
    .description("write an entry (value from the argument, --file, or stdin)")
    .option("--file <path>", "read the value from a file")
    .addOption(new Option("--ttl <seconds>", "time to live (0 = never expires)").argParser(nonNegativeInt))
    .option("--if-absent", "only create (412 if present)")
    .option("--if-version <version>", "compare-and-set against this version")
    .action(async (name: string, key: string, value: string | undefined, opts: PutFlags) => {
      let bytes: Buffer;
      if (value !== undefined) bytes = Buffer.from(value, "utf8");
      else if (opts.file !== undefined) bytes = readFileSync(opts.file);
      else bytes = await readStdin();
      const written = await client().putEntry(name, keyBytes(key), bytes, {
        ttlSeconds: opts.ttl,
        ifAbsent: opts.ifAbsent,
        ifVersion: opts.ifVersion,
      });
      console.log(`${written.created ? "created" : "replaced"} version ${written.version}`);
    });

  kvm
    .command("delete <kvm> [key]")
    .description("delete an entry, or with --all the whole map")
    .option("--all", "delete every entry of the map")
    .action(async (name: string, key: string | undefined, opts: { all?: boolean }) => {
      if (opts.all) {
        console.log(`deleted ${await client().deleteMap(name)} entries`);
        return;
      }
      if (key === undefined) throw new InvalidArgumentError("give a key, or --all for the whole map");
      await client().deleteEntry(name, keyBytes(key));
      console.log("deleted");
    });

  kvm
    .command("list [kvm]")
    .description("list maps (no argument) or a map's keys")
    .option("--prefix <prefix>", "only keys starting with this")
    .option("--json", "print whole entries as JSON lines")
    .action(async (name: string | undefined, opts: { prefix?: string; json?: boolean }) => {
      const c = client();
      if (name === undefined) {
        for await (const m of c.listMaps()) {
          console.log(opts.json ? JSON.stringify(m) : `${m.name}\t${m.entries}`);
        }
        return;
      }
      for await (const e of c.listEntries(name, opts.prefix)) {
        console.log(opts.json ? JSON.stringify(e) : (e.key ?? `base64:${e.key_base64}`));
      }
    });

  kvm.addCommand(importCommand(client));
  kvm.addCommand(exportCommand(client));
  kvm.addCommand(reencryptCommand(client));
  return kvm;
}
