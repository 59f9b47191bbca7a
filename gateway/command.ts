// `envoy-kvm gateway --config envoy/envoy.yaml [--cluster name=host:port …] [--listen name=host:port …]
// [--file path=local …]`: serves an envoy.yaml with the Node proxy-wasm host until SIGTERM / SIGINT.
import { Command } from "commander";

const collect = (value: string, previous: Record<string, string>) => {
  const at = value.indexOf("=");
  if (at <= 0) throw new Error(`expected name=value, not ${value}`);
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
};

export function gatewayCommand(): Command {
  return new Command("gateway")
    .description("serve an envoy.yaml locally with the Node proxy-wasm host (production runs Envoy)")
    .requiredOption("--config <file>", "the Envoy configuration, e.g. envoy/envoy.yaml")
    .option("--cluster <name=host:port>", "send a cluster's traffic to host:port (repeatable)", collect, {})
    .option(
      "--listen <name=host:port>",
      "listen for a listener on host:port instead (repeatable)",
      collect,
      {},
    )
    .option(
      "--file <path=local>",
      "read a file the configuration names from a local path (repeatable)",
      collect,
      {
        "/etc/envoy/kvm_filter.wasm": "build/kvm_filter.wasm",
      },
    )
    .option("--workers <n>", "VMs per wasm filter, like Envoy's worker threads", (v) => Number(v), 2)
    .action(
      async (opts: {
        config: string;
        cluster: Record<string, string>;
        listen: Record<string, string>;
        file: Record<string, string>;
        workers: number;
      }) => {
        const { loadGatewayConfig } = await import("./config.ts");
        const { startGateway } = await import("./server.ts");
        const gateway = await startGateway(loadGatewayConfig(opts.config), {
          clusters: opts.cluster,
          listen: opts.listen,
          files: opts.file,
          workers: opts.workers,
        });
        for (const [name, url] of Object.entries(gateway.urls))
          console.log(`gateway listener ${name} on ${url}`);
        const stop = () => {
          void gateway.stop().then(() => {
            console.log("envoy-kvm gateway stopped");
            process.exit(0);
          });
        };
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      },
    );
}
