// The filter's root id. Envoy's `root_id` in envoy.yaml, registerRootContext and the metric
// prefix all use this one value (the Node host and the tests read it from here too).
export const ROOT_ID = "envoy_kvm";
