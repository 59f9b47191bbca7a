#!/usr/bin/env node
// The `envoy-kvm` command. There is no compile step: tsx is registered as a module loader, then the
// TypeScript CLI is imported (works as `node bin/envoy-kvm.js …` and as `npx envoy-kvm …`).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../service/cli/index.ts");
await main(process.argv);
