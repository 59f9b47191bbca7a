// Metric host calls (proxy-wasm-cpp-host src/exports.cc *_metric; envoy
// source/extensions/common/wasm/context.cc defineMetric / incrementMetric / recordMetric /
// getMetric). Ids are per VM and carry the type in the low two bits (kMetricTypeMask); the stat
// behind a name is shared by every VM of the plugin (PluginCore.stat).
import { METRIC_TYPE_MAX, MetricType, WasmResult } from "../abi.ts";
import { u, type HostApi, type ImportFunctions } from "./host-api.ts";

export function metricImports(host: HostApi): ImportFunctions {
  const mem = host.memory;
  const core = host.core;
  // Each id keeps the stat it names: PluginCore never drops a stat, so the name is not looked up per call.
  const metricIds = new Map<number, { type: number; name: string; stat: ReturnType<typeof core.stat> }>();
  const nextMetricId = [0, 1, 2];
  return {
    proxy_define_metric: (type: number, namePtr: number, nameSize: number, idPtr: number) => {
      if (u(type) > METRIC_TYPE_MAX) return WasmResult.BadArgument;
      const name = mem.read(namePtr, nameSize);
      if (!name) return WasmResult.InvalidMemoryAccess;
      // Envoy's metric ids carry the type in the low 2 bits (kMetricTypeMask) and step by 4.
      nextMetricId[u(type)] += 4;
      const id = nextMetricId[u(type)] >>> 0;
      const metricName = name.toString("utf8");
      metricIds.set(id, { type: u(type), name: metricName, stat: core.stat(u(type), metricName) });
      return mem.writeU32(idPtr, id) ? WasmResult.Ok : WasmResult.InvalidMemoryAccess;
    },
    proxy_increment_metric: (id: number, offset: bigint) => {
      const type = u(id) & 3;
      if (type === MetricType.Histogram || type === 3) return WasmResult.BadArgument;
      const metric = metricIds.get(u(id));
      if (!metric) return WasmResult.NotFound;
      const stat = metric.stat;
      if (type === MetricType.Counter && offset <= 0n) return WasmResult.BadArgument;
      stat.value += Number(offset);
      return WasmResult.Ok;
    },
    proxy_record_metric: (id: number, value: bigint) => {
      const metric = metricIds.get(u(id));
      if (!metric || metric.type !== (u(id) & 3)) return WasmResult.NotFound;
      const stat = metric.stat;
      const v = Number(BigInt.asUintN(64, value));
      if (metric.type === MetricType.Counter) stat.value += v;
      else if (metric.type === MetricType.Gauge) stat.value = v;
      else stat.values.push(v);
      return WasmResult.Ok;
    },
    proxy_get_metric: (id: number, resultPtr: number) => {
      const type = u(id) & 3;
      if (type !== MetricType.Counter && type !== MetricType.Gauge) return WasmResult.BadArgument;
      const metric = metricIds.get(u(id));
      if (!metric) return WasmResult.NotFound;
      const stat = metric.stat;
      return mem.writeU64(resultPtr, BigInt(Math.trunc(stat.value)))
        ? WasmResult.Ok
        : WasmResult.InvalidMemoryAccess;
    },
  };
}
