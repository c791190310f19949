// A small seeded random number generator, so that data derivation and the example data are
// reproducible byte for byte on every platform (Math.random cannot be seeded).

/** mulberry32: a 32-bit state PRNG; returns floats in [0, 1) that are exact multiples of 2^-32. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Random {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi], both included. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /**
   * `k` distinct integers from [0, n), in random order. Floyd's algorithm: exactly k draws
   * whatever n is, then a shuffle.
   */
  sample(n: number, k: number): number[] {
    if (k > n) throw new RangeError(`cannot draw ${k} distinct items from ${n}`);
    const chosen = new Set<number>();
    const order: number[] = [];
    for (let j = n - k; j < n; j++) {
      const t = this.int(j + 1);
      const v = chosen.has(t) ? j : t;
      chosen.add(v);
      order.push(v);
    }
    return this.shuffle(order);
  }
}

/** A seed for a named sub-stream, so that adding draws to one stream does not shift another. */
export function subSeed(seed: number, label: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0); // FNV-1a over the label, started from the seed
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
