// The host's time source. Envoy answers proxy_get_current_time_nanoseconds and WASI realtime from the
// wall clock (envoy context.cc getCurrentTimeNanoseconds: time_source_.systemTime()), and WASI
// monotonic from the monotonic clock; tests substitute a ManualClock to make TTLs deterministic.

export interface Clock {
  /** Wall-clock time in milliseconds since the Unix epoch (fractions allowed). */
  nowMs(): number;
  /** Monotonic time in milliseconds; defaults to nowMs() when a clock does not provide it. */
  monotonicMs?(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};

export class ManualClock implements Clock {
  private current: number;

  constructor(startMs: number = Date.UTC(2026, 0, 1)) {
    this.current = startMs;
  }

  nowMs(): number {
    return this.current;
  }

  monotonicMs(): number {
    return this.current;
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError("ManualClock.advance: ms must be ≥ 0");
    this.current += ms;
  }

  set(ms: number): void {
    this.current = ms;
  }
}

/** Milliseconds → u64 nanoseconds, as the ABI returns them. */
export function msToNanos(ms: number): bigint {
  const whole = Math.floor(ms);
  const fraction = Math.round((ms - whole) * 1e6);
  return BigInt(whole) * 1_000_000n + BigInt(fraction);
}
