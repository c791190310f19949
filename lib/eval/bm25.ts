// Okapi BM25 over text chunks: the lexical baseline retriever of the PDF evaluation (Robertson
// and Zaragoza 2009). IDF is Lucene's ln(1 + (N - df + 0.5) / (df + 0.5)), which stays positive
// for terms in more than half of the chunks; k1 = 1.2, b = 0.75. Ties rank by chunk order.

const STOPWORDS = new Set(
  ("a an and are as at be been but by can could did do does for from had has have how i if in into is it its " +
    "many may more most much no not of on or our so such than that the their them then there these they this " +
    "those to was we were what when where which while who why will with would you your")
    .split(" "),
);

/** Lower-cased letter/digit runs, stopwords removed ("top-k" -> "top", "k"; "5e-6" -> "5e", "6"). */
export function bm25Tokens(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((t) => !STOPWORDS.has(t));
}

export class Bm25 {
  private readonly tf: Array<Map<string, number>>;
  private readonly lengths: number[];
  private readonly avgLength: number;
  private readonly df = new Map<string, number>();

  constructor(
    docs: readonly string[],
    private readonly k1 = 1.2,
    private readonly b = 0.75,
  ) {
    this.tf = docs.map((d) => {
      const m = new Map<string, number>();
      for (const t of bm25Tokens(d)) m.set(t, (m.get(t) ?? 0) + 1);
      return m;
    });
    this.lengths = docs.map((_, i) => [...this.tf[i].values()].reduce((a, c) => a + c, 0));
    this.avgLength = this.lengths.reduce((a, c) => a + c, 0) / Math.max(1, docs.length);
    for (const m of this.tf) for (const t of m.keys()) this.df.set(t, (this.df.get(t) ?? 0) + 1);
  }

  idf(term: string): number {
    const n = this.tf.length;
    const df = this.df.get(term) ?? 0;
    return Math.log(1 + (n - df + 0.5) / (df + 0.5));
  }

  /** The score of every document for `query`. */
  scores(query: string): number[] {
    const terms = bm25Tokens(query);
    return this.tf.map((m, i) => {
      let s = 0;
      const norm = this.k1 * (1 - this.b + (this.b * this.lengths[i]) / (this.avgLength || 1));
      for (const t of terms) {
        const f = m.get(t) ?? 0;
        if (f > 0) s += (this.idf(t) * f * (this.k1 + 1)) / (f + norm);
      }
      return s;
    });
  }

  /** Document indices, best first (the first `k`, or all). */
  rank(query: string, k?: number): number[] {
    const s = this.scores(query);
    const order = s.map((_, i) => i).sort((a, b) => s[b] - s[a] || a - b);
    return k === undefined ? order : order.slice(0, k);
  }
}
