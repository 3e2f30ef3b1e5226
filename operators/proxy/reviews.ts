// The proxy's memory of TokenReview and SubjectAccessReview answers: bounded (LRU), with
// positive answers reused for `ttlMs` and served up to three times that while one call
// refreshes them in the background (so an expiring entry never holds requests up), and
// negative answers (invalid tokens, denials) in a separate, smaller-lived cache. A review
// that fails (the API server is down) is not remembered.
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { canonicalJson } from "../catalog/digest.ts";

export interface ReviewCacheOptions<V, C> {
  /** The review: the positive answer, or undefined for a negative one. */
  review: (context: C) => Promise<V | undefined>;
  ttlMs: number;
  negativeTtlMs: number;
  max: number;
  negativeMax: number;
  now?: () => number;
}

export class ReviewCache<V extends object | boolean, C> {
  private readonly positive: LRUCache<string, V, C>;
  private readonly negative: LRUCache<string, true>;
  private readonly ttlMs: number;

  constructor(options: ReviewCacheOptions<V, C>) {
    // A clock of its own (tests) is read on every call, not once per millisecond.
    const clock = options.now ? { perf: { now: options.now }, ttlResolution: 0 } : {};
    this.ttlMs = options.ttlMs;
    this.negative = new LRUCache<string, true>({
      max: options.negativeMax,
      ttl: options.negativeTtlMs,
      ...clock,
    });
    this.positive = new LRUCache<string, V, C>({
      max: options.max,
      ttl: options.ttlMs,
      allowStale: true,
      noDeleteOnStaleGet: true,
      allowStaleOnFetchRejection: true,
      ...clock,
      fetchMethod: async (key, stale, { context }) => {
        const answer = await options.review(context);
        // lru-cache keeps the stale value when a refresh answers nothing: the negative
        // entry then outlives it (it is never served past three times the TTL).
        if (answer === undefined)
          this.negative.set(key, true, stale === undefined ? {} : { ttl: 3 * options.ttlMs });
        else this.negative.delete(key);
        return answer;
      },
    });
  }

  /** Whether `key` is answered from memory (fresh, recent enough, or negative): no review. */
  known(key: string): boolean {
    this.dropExpired(key);
    return this.negative.has(key) || this.positive.peek(key, { allowStale: true }) !== undefined;
  }

  /** The answer for `key`, reviewed with `context` when not known. */
  async get(key: string, context: C): Promise<V | undefined> {
    if (this.negative.has(key)) return undefined;
    this.dropExpired(key);
    // (lru-cache's option type is conditional on C, which stays open in a generic class.)
    return this.positive.fetch(key, { context } as never);
  }

  /** A positive answer older than three times the TTL is not served, even stale. */
  private dropExpired(key: string): void {
    const remaining = this.positive.getRemainingTTL(key);
    if (remaining < -2 * this.ttlMs) this.positive.delete(key);
  }

  get size(): { positive: number; negative: number } {
    return { positive: this.positive.size, negative: this.negative.size };
  }
}

export interface ReviewedUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** The cache key of a TokenReview: a hash of the token (never the token itself). */
export function tokenKey(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** A hash of the whole user (name, uid, groups, extra), computed once per TokenReview. */
export function userKey(user: ReviewedUser): string {
  const { username, uid, groups, extra } = user;
  return createHash("sha256").update(canonicalJson({ username, uid, groups, extra })).digest("hex");
}

/**
 * The cache key of a SubjectAccessReview: the hash of the whole user (`userKey`) and the
 * attributes asked about, so two users who differ in any of these never share an answer.
 */
export function accessReviewKey(user: string, attributes: Record<string, string>): string {
  return `${user}:${canonicalJson(attributes)}`;
}
