// Module entry: the ABI exports and the root context registration. The root context's exports
// (configuration, ticks, callout answers) are the SDK's; the per-stream ones are the filter's own
// (stream_exports.ts), so a request never goes through the SDK's context map.
export {
  malloc,
  free,
  proxy_abi_version_0_2_0,
  proxy_on_vm_start,
  proxy_validate_configuration,
  proxy_on_configure,
  proxy_on_tick,
  proxy_on_foreign_function,
  proxy_on_queue_ready,
  proxy_on_http_call_response,
  proxy_on_grpc_receive_initial_metadata,
  proxy_on_grpc_trailing_metadata,
  proxy_on_grpc_receive,
  proxy_on_grpc_close,
} from "@solo-io/proxy-runtime/proxy";
export {
  proxy_on_context_create,
  proxy_on_request_headers,
  proxy_on_request_body,
  proxy_on_request_trailers,
  proxy_on_request_metadata,
  proxy_on_response_headers,
  proxy_on_response_body,
  proxy_on_response_trailers,
  proxy_on_response_metadata,
  proxy_on_done,
  proxy_on_log,
  proxy_on_delete,
} from "./stream_exports";
import { RootContext, registerRootContext } from "@solo-io/proxy-runtime";
import { ROOT_ID } from "./constants";
import { createRootContext } from "./stream_exports";

registerRootContext((contextId: u32): RootContext => createRootContext(contextId), ROOT_ID);
