// `envoy-kvm config check FILE…`: every envoy-kvm filter configuration in a plugin configuration JSON or an
// envoy.yaml, judged by the schema and by the compiled filter (convert/check.ts); exit 1 on any failure.
import { Command } from "commander";

export function configCommand(): Command {
  const config = new Command("config").description("filter configurations");
  config
    .command("check")
    .argument("<file...>", "a plugin configuration JSON or an envoy.yaml")
    .description(
      "check every envoy-kvm filter configuration in the files by the schema and by loading it into build/kvm_filter.wasm",
    )
    .action(async (files: string[]) => {
      const { checkFile } = await import("../../convert/check.ts");
      let ok = true;
      for (const file of files) {
        const result = await checkFile(file);
        for (const line of result.lines) console.log(line);
        ok &&= result.ok;
      }
      if (!ok) process.exitCode = 1;
    });
  return config;
}
