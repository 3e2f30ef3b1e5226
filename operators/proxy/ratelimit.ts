// A token bucket per key (the user): `rate` requests a second, bursts up to `burst`.
// Idle buckets are forgotten, so memory follows the active users only.

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`; false when the bucket is empty. */
  take(key: string): boolean {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    // Re-insert: the map stays in order of last use, oldest first.
    this.buckets.delete(key);
    this.buckets.set(key, b);
    this.evict(now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Seconds until `key` has a token again (for Retry-After). */
  retryAfter(key: string): number {
    const b = this.buckets.get(key);
    if (!b || b.tokens >= 1) return 0;
    return Math.ceil((1 - b.tokens) / this.rate);
  }

  private evict(now: number): void {
    // A bucket full again carries no state.
    const full = (this.burst / this.rate) * 1000;
    for (const [key, b] of this.buckets) {
      if (now - b.at < full) break;
      this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}
