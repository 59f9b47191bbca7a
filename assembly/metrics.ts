// Counters per kvm_name, operation, policy and result. Names are
//   envoy_kvm.<policy>.<operation>.<result>.<kvm_name>
// with the free-form kvm_name (which may contain dots) last, so stats_tags regexes anchored at
// both ends can lift each part into a Prometheus label (see envoy/envoy.yaml). Metric ids are
// per VM (docs/envoy-behaviour.md §9), so each worker defines its own, lazily, and caches the id.
import { ROOT_ID } from "./constants";
import { Operation, OperationType, Policy } from "./model";
import { MetricType } from "./hostcalls/abi";
import { defineMetric, incrementMetric, recordMetric } from "./hostcalls/calls";

export const RESULT_HIT = "hit";
export const RESULT_MISS = "miss";
export const RESULT_OK = "ok";
export const RESULT_ERROR = "error";

const metricIds = new Map<string, u32>();

export function policyName(policy: Policy): string {
  if (policy == Policy.Cluster) return "cluster";
  return "local";
}

export function operationName(type: OperationType): string {
  if (type == OperationType.Put) return "put";
  if (type == OperationType.Delete) return "delete";
  return "get";
}

export function counterName(op: Operation, result: string): string {
  return (
    ROOT_ID +
    "." +
    policyName(op.policy) +
    "." +
    operationName(op.operationType) +
    "." +
    result +
    "." +
    op.kvmName
  );
}

export function countResult(op: Operation, result: string): void {
  incrementMetric(metricId(op, MetricType.Counter, result), 1);
}

// The cluster policy's own counters, same name shape (the "result" part names the event):
//   cache_hit / cache_miss / cache_revalidated  (gets with cache_ttl)
//   callout_2xx … callout_5xx, callout_timeout (504), callout_reset (no headers), callout_refused (dispatch)
//   callout_shared (a get that waited on the same get's callout instead of making its own)
// and the callout latency histogram envoy_kvm.cluster.<operation>.callout_ms.<kvm_name>.
export const CACHE_HIT = "cache_hit";
export const CACHE_MISS = "cache_miss";
export const CACHE_REVALIDATED = "cache_revalidated";
export const CALLOUT_SHARED = "callout_shared";

export function calloutOutcomeName(status: u32, refused: bool): string {
  if (refused) return "callout_refused";
  if (status == 0) return "callout_reset";
  if (status == 504) return "callout_timeout";
  if (status >= 200 && status < 300) return "callout_2xx";
  if (status >= 300 && status < 400) return "callout_3xx";
  if (status >= 400 && status < 500) return "callout_4xx";
  if (status >= 500 && status < 600) return "callout_5xx";
  return "callout_invalid";
}

// Metric ids are per VM: each is defined once, on first use, and kept twice: by the operation under
// its result (the request path's lookup) and by name (operations of the same map share the metric).
function metricId(op: Operation, type: MetricType, result: string): u32 {
  if (op.metricIds.has(result)) return op.metricIds.get(result);
  const name = counterName(op, result);
  let id: u32 = 0;
  if (metricIds.has(name)) id = metricIds.get(name);
  else {
    id = defineMetric(type, name);
    metricIds.set(name, id);
  }
  op.metricIds.set(result, id);
  return id;
}

export function countEvent(op: Operation, event: string): void {
  incrementMetric(metricId(op, MetricType.Counter, event), 1);
}

export function recordCalloutLatency(op: Operation, ms: u64): void {
  recordMetric(metricId(op, MetricType.Histogram, "callout_ms"), ms);
}
