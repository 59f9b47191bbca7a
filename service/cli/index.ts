// The `envoy-kvm` command line (bin/envoy-kvm.js registers tsx and calls main()): one file per command group.
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { ConfigError } from "../config.ts";
import { BaseUrlError, ServiceError } from "../client.ts";
import { serviceCommand } from "./service.ts";
import { migrateCommand } from "./migrate.ts";
import { TOKEN_VARIABLE, kvmCommand } from "./kvm.ts";
import { gatewayCommand } from "../../gateway/command.ts";
import { startCommand } from "../../gateway/stack.ts";

export const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export function buildProgram(): Command {
  return new Command("envoy-kvm")
    .description("envoy-kvm: the KVM service, its schema migrations, and an admin client")
    .version(VERSION, "-V, --version", "print the version")
    .addCommand(serviceCommand())
    .addCommand(migrateCommand())
    .addCommand(kvmCommand())
    .addCommand(gatewayCommand())
    .addCommand(startCommand());
}

/** The one line an error prints, saying what to change where the cause is the user's setup. */
export function errorLine(err: unknown): string {
  if (err instanceof ConfigError) return `configuration error: ${err.message}`;
  if (err instanceof BaseUrlError) return `${err.message} (the --url flag or the KVM_URL variable)`;
  if (err instanceof ServiceError && err.status === 401 && !err.tokenSent) {
    return `the service wants an admin token: set ${TOKEN_VARIABLE} or pass --token <token> (401 unauthorized)`;
  }
  if (err instanceof ServiceError && err.status !== 0) return `${err.message} (${err.status} ${err.code})`;
  return (err as Error).message;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    console.error(`envoy-kvm: ${errorLine(err)}`);
    process.exitCode = 1;
  }
}
