// Token buckets per key (a principal, a client address): `capacity` requests at once, refilled at
// `perSecond`. Used for mutating routes (per principal) and failed logins (per address). In memory: a
// restart forgets them, which is fine for limits meant to blunt floods and guessing.
export interface BucketOptions {
  capacity: number;
  perSecond: number;
}

export type Take = { ok: true } | { ok: false; retryAfterSec: number };

export class TokenBuckets {
  readonly options: BucketOptions;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #maxKeys: number;

  constructor(options: BucketOptions, maxKeys = 50_000) {
    if (!(options.capacity >= 1) || !(options.perSecond > 0))
      throw new Error("a rate limit needs capacity >= 1 and perSecond > 0");
    this.options = options;
    this.#maxKeys = maxKeys;
  }

  #level(key: string, now: number): { tokens: number; at: number } {
    const bucket = this.#buckets.get(key);
    const { capacity, perSecond } = this.options;
    if (!bucket) return { tokens: capacity, at: now };
    return { tokens: Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * perSecond), at: now };
  }

  /** Whether a request may pass now, without spending anything. */
  check(key: string, now = Date.now()): Take {
    const { tokens } = this.#level(key, now);
    if (tokens >= 1) return { ok: true };
    return { ok: false, retryAfterSec: Math.ceil((1 - tokens) / this.options.perSecond) };
  }

  /** Spends one token when there is one. */
  take(key: string, now = Date.now()): Take {
    const level = this.#level(key, now);
    if (level.tokens < 1) {
      this.#buckets.set(key, level);
      return { ok: false, retryAfterSec: Math.ceil((1 - level.tokens) / this.options.perSecond) };
    }
    level.tokens -= 1;
    this.#buckets.delete(key); // re-inserted last: the oldest keys are dropped first when full
    this.#buckets.set(key, level);
    if (this.#buckets.size > this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    return { ok: true };
  }
}
