// `envoy-kvm convert apigee | kong`: existing Apigee KeyValueMapOperations policies and Kong
// key-value-map-operations plugin configurations → an envoy-kvm plugin configuration (convert/).
// Exit status: 0 complete, 2 written but incomplete (each element left out is reported with file:line), 1 failed.
import { Command, Option } from "commander";
import type { Conversion, Policy } from "../../convert/model.ts";
import type { OutputOptions } from "../../convert/output.ts";

interface Flags {
  output?: string;
  envoy?: string;
  importDir?: string;
  kongConf?: string;
  policy?: Policy;
  upstream: string;
  dryRun?: boolean;
}

function common(command: Command): Command {
  return command
    .option(
      "-o, --output <file>",
      "write the plugin configuration JSON there (default: stdout, the report to stderr)",
    )
    .option("--envoy <file>", "also write an envoy.yaml fragment: the named routes and the wasm filter")
    .option("--upstream <cluster>", "Envoy cluster of routes without a service of their own", "upstream")
    .option("--dry-run", "print the report only; write nothing");
}

async function emit(conversion: Conversion, flags: Flags, source: string, clusters?: Record<string, string>) {
  const { writeConversion } = await import("../../convert/output.ts");
  const opts: OutputOptions = { source, upstream: flags.upstream, clusters, dryRun: flags.dryRun };
  if (flags.output !== undefined) opts.output = flags.output;
  if (flags.envoy !== undefined) opts.envoy = flags.envoy;
  if (flags.importDir !== undefined) opts.importDir = flags.importDir;
  const outcome = await writeConversion(conversion, opts);
  const toStderr = outcome.stdout !== null;
  for (const line of outcome.report) (toStderr ? console.error : console.log)(line);
  if (outcome.stdout !== null) process.stdout.write(outcome.stdout);
  process.exitCode = outcome.exitCode;
}

export function convertCommand(): Command {
  const convert = new Command("convert").description(
    "convert Apigee KeyValueMapOperations policies or Kong key-value-map-operations plugins into a plugin configuration",
  );
  common(
    convert
      .command("apigee")
      .argument(
        "<input>",
        "a policy .xml, an apiproxy folder (or the folder holding apiproxy/), or a proxy bundle .zip",
      )
      .description(
        "convert Apigee KeyValueMapOperations policies and the proxy endpoint flows that attach them",
      ),
  )
    .addOption(
      new Option("--policy <policy>", "where the maps live (Apigee KVMs are shared and persistent: cluster)")
        .choices(["local", "cluster"])
        .default("cluster"),
    )
    .option("--import-dir <dir>", "write InitialEntries as envoy-kvm kvm import files there")
    .action(async (input: string, flags: Flags) => {
      const { convertApigee } = await import("../../convert/apigee.ts");
      await emit(convertApigee(input, { policy: flags.policy ?? "cluster" }), flags, `apigee ${input}`);
    });
  common(
    convert
      .command("kong")
      .argument("<file>", "a Kong declarative configuration (kong.yaml in deck's format, or a deck dump)")
      .description("convert key-value-map-operations plugin instances (global, per service, per route)"),
  )
    .addOption(
      new Option("--policy <policy>", "override every instance's policy").choices(["local", "cluster"]),
    )
    .option("--kong-conf <file>", "the kong.conf whose lua_shared_dict sizes the report should name")
    .action(async (file: string, flags: Flags) => {
      const { convertKong } = await import("../../convert/kong.ts");
      const conversion = convertKong(file, { policy: flags.policy ?? null, kongConf: flags.kongConf });
      await emit(conversion, flags, `kong ${file}`, conversion.clusters);
    });
  return convert;
}
