// Key choice for the service benchmarks: Zipf popularity (rank r drawn with probability ∝ 1/r^s) or uniform,
// over keys k0 … k(n-1) of map "bench". Rank 1 is k0, so the hot keys are the low numbers.
export const BENCH_KVM = "bench";
export const benchKey = (i: number) => `k${i}`;

/** The value stored under key i: 64 bytes, the same for the seeding SQL and for checks. */
export const VALUE_BYTES = 64;

/** A sampler of key indexes in [0, n): Zipf with exponent s (s = 0 is uniform). */
export function keySampler(n: number, s: number, random: () => number = Math.random): () => number {
  if (s === 0) return () => Math.floor(random() * n);
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    sum += 1 / Math.pow(i + 1, s);
    cdf[i] = sum;
  }
  return () => {
    const u = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** Small deterministic PRNG (mulberry32), so every run draws the same key sequence from a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
