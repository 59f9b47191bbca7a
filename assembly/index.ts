// Module entry: the SDK's ABI exports (proxy_abi_version_0_2_0, malloc, proxy_on_*) and the
// root context registration.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, registerRootContext } from "@solo-io/proxy-runtime";
import { ROOT_ID } from "./constants";
import { KvmRootContext } from "./filter";

registerRootContext((contextId: u32): RootContext => new KvmRootContext(contextId), ROOT_ID);
