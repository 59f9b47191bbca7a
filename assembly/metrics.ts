// Counters per kvm_name, operation, policy and result. Names are
//   envoy_kvm.<policy>.<operation>.<result>.<kvm_name>
// with the free-form kvm_name (which may contain dots) last, so stats_tags regexes anchored at
// both ends can lift each part into a Prometheus label (see envoy/envoy.yaml). Metric ids are
// per VM (envoy-host.md §9), so each worker defines its own, lazily, and caches the id.
import { ROOT_ID } from "./constants";
import { Operation, OperationType, Policy } from "./model";
import { MetricType } from "./hostcalls/abi";
import { defineMetric, incrementMetric } from "./hostcalls/calls";

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
  const name = counterName(op, result);
  let id: u32;
  if (metricIds.has(name)) {
    id = metricIds.get(name);
  } else {
    id = defineMetric(MetricType.Counter, name);
    metricIds.set(name, id);
  }
  incrementMetric(id, 1);
}
