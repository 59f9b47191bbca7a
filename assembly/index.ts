export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, registerRootContext } from "@solo-io/proxy-runtime";
import { ROOT_ID } from "./constants";

registerRootContext((id: u32): RootContext => new RootContext(id), ROOT_ID);
