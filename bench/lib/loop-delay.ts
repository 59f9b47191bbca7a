// Event-loop delay as the benchmark reports it: perf_hooks.monitorEventLoopDelay at the resolution prom-client
// uses for the service's nodejs_eventloop_lag_* metrics (10 ms), so the floor server, the idle bench process and
// the service are measured alike. The histogram records the interval between timer callbacks, which includes
// the resolution itself: the delay is the recorded value minus the resolution.
import { monitorEventLoopDelay } from "node:perf_hooks";

export const LOOP_RESOLUTION_MS = 10;

export interface LoopDelay {
  /** Milliseconds beyond the resolution. */
  p50: number;
  p99: number;
  max: number;
}

export function loopDelayMonitor(): { takeMs(): LoopDelay } {
  const histogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  histogram.enable();
  return {
    /** The delays since the previous call (or since start), then starts afresh. */
    takeMs() {
      const ms = (ns: number) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
      const out = {
        p50: ms(histogram.percentile(50)),
        p99: ms(histogram.percentile(99)),
        max: ms(histogram.max),
      };
      histogram.reset();
      return out;
    },
  };
}

/** The service's delays since its previous scrape, from prom-client's nodejs_eventloop_lag_* (reset per scrape). */
export function loopDelayFromMetrics(text: string): LoopDelay {
  const seconds = (name: string) =>
    Number(new RegExp(`^nodejs_eventloop_lag_${name}_seconds (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  const ms = (s: number) => Math.max(0, s * 1000 - LOOP_RESOLUTION_MS);
  return { p50: ms(seconds("p50")), p99: ms(seconds("p99")), max: ms(seconds("max")) };
}

/** Seconds of garbage collection since start, all kinds, from prom-client's nodejs_gc_duration_seconds. */
export function gcSecondsFromMetrics(text: string): number {
  let sum = 0;
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
  return sum;
}

/** CPU seconds (user + system) the service has used since start, from prom-client's process_cpu_seconds_total. */
export function cpuSecondsFromMetrics(text: string): number {
  return Number(/^process_cpu_seconds_total (\S+)$/m.exec(text)?.[1] ?? NaN);
}
