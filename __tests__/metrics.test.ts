import {
  answerMetrics,
  boolMapping,
  coverExactMatch,
  exactMatch,
  f1Score,
  goldAnswer,
  keywordMatch,
  meanPrecisionAtK,
  meanRecallAtK,
  normalizeAnswer,
  precisionAtK,
  pySplit,
  recallAtK,
  retrievalMetrics,
  rougeL,
  tokenF1,
} from "../lib/eval/metrics";
import { catchClara } from "./helpers/errors";

// Expected values are worked out by hand from the reference's rules (spec §4.1); the comments
// show the normalised strings.

describe("normalizeAnswer", () => {
  test.each([
    ["The Cat!", "cat"],
    ["  Hello,\tWORLD.  ", "hello world"],
    ["An apple a day", "apple day"],
    ["the theatre and anthem", "theatre and anthem"], // articles only as whole words
    ["the-end", "theend"], // punctuation goes first, so "the" is no longer a word
    ["_a_", ""], // "_" is punctuation: "_a_" -> "a" -> article -> ""
    ["A.B.C.", "abc"],
    ["it's", "its"],
    ["it’s “quoted”", "it’s “quoted”"], // only ASCII punctuation (string.punctuation) is removed
    [`!"#$%&'()*+,-./:;<=>?@[\\]^_\`{|}~x`, "x"], // every character of string.punctuation
    ["1,925 yards", "1925 yards"],
    ["", ""],
  ])("%j -> %j", (input, expected) => {
    expect(normalizeAnswer(input)).toBe(expected);
  });

  test("word boundaries are Unicode-aware, as in Python's re", () => {
    expect(normalizeAnswer("éa b")).toBe("éa b"); // "é" is a word character: "a" is not a word here
    expect(normalizeAnswer("café a")).toBe("café");
    expect(normalizeAnswer("ça the")).toBe("ça");
    expect(normalizeAnswer("a1 the2 an_x")).toBe("a1 the2 anx");
    expect(normalizeAnswer("Ünïcode THE Ärger")).toBe("ünïcode ärger");
  });

  test("whitespace is Python's str.split() set", () => {
    expect(normalizeAnswer("a\u00a0b\u3000c\x1cd\x85e")).toBe("b c d e");
    expect(normalizeAnswer("x\ufeffy")).toBe("x\ufeffy"); // U+FEFF is not whitespace in Python
    expect(normalizeAnswer("x\u200by")).toBe("x\u200by");
    expect(pySplit("  a \n\t b  ")).toEqual(["a", "b"]);
    expect(pySplit("")).toEqual([]);
  });
});

describe("boolMapping", () => {
  test("maps the exact strings True/False only", () => {
    expect(boolMapping("True")).toBe("yes");
    expect(boolMapping("False")).toBe("no");
    expect(boolMapping("true")).toBe("true");
    expect(boolMapping(" True")).toBe(" True");
    expect(boolMapping("TRUE")).toBe("TRUE");
  });
});

describe("exactMatch", () => {
  test("compares normalised strings", () => {
    expect(exactMatch("The Eiffel Tower.", "eiffel tower")).toBe(true);
    expect(exactMatch("Eiffel Tower in Paris", "eiffel tower")).toBe(false);
    expect(exactMatch("True", "yes")).toBe(true);
    expect(exactMatch("yes", "False")).toBe(false);
    expect(exactMatch("true", "yes")).toBe(false); // bool mapping is case-sensitive
    expect(exactMatch("", "the")).toBe(true); // both normalise to ""
  });
});

describe("coverExactMatch (ACC)", () => {
  test("bag-of-tokens containment, order-insensitive", () => {
    expect(coverExactMatch("It is Paris, in France.", "France Paris")).toBe(true);
    expect(coverExactMatch("Paris", "Paris, France")).toBe(false);
    expect(coverExactMatch("Parisian food", "Paris")).toBe(false); // tokens, not substrings
    expect(coverExactMatch("new york", "New New York")).toBe(true); // multiplicity is ignored
    expect(coverExactMatch("anything", "")).toBe(true); // all() of nothing
    expect(coverExactMatch("anything", "the")).toBe(true);
    expect(coverExactMatch("", "x")).toBe(false);
    expect(coverExactMatch("the answer is True", "True")).toBe(false); // bool mapping is whole-string
    expect(coverExactMatch("True", "yes")).toBe(true);
  });
});

describe("f1Score", () => {
  test("SQuAD Counter-intersection F1", () => {
    // "cat sat on mat" vs "cat on mat": 3 common, P = 3/4, R = 1, F1 = 6/7
    expect(f1Score("The cat sat on the mat", "cat on mat")).toBeCloseTo(6 / 7, 12);
    // "x x y" vs "x y y": common = min counts = 1 + 1 = 2, P = R = 2/3
    expect(f1Score("x x y", "x y y")).toBeCloseTo(2 / 3, 12);
    expect(f1Score("Paris", "paris!")).toBe(1);
    expect(f1Score("London", "Paris")).toBe(0);
    expect(f1Score("", "")).toBe(0); // no common token: 0, even for two empty strings
  });

  test("the yes/no/noanswer rule", () => {
    expect(f1Score("yes", "no")).toBe(0);
    expect(f1Score("yes it is", "yes")).toBe(0); // gold is "yes", prediction differs
    expect(f1Score("yes", "yes it is")).toBe(0); // prediction is "yes", gold differs
    expect(f1Score("Yes.", "yes")).toBe(1);
    expect(f1Score("True", "yes")).toBe(1); // bool mapping first
    expect(f1Score("noanswer", "noanswer")).toBe(1);
    expect(f1Score("no answer", "noanswer")).toBe(0); // gold is "noanswer" and the prediction differs
    expect(f1Score("maybe yes", "maybe no")).toBeCloseTo(0.5, 12); // rule only for whole answers
  });
});

describe("goldAnswer", () => {
  test("golden_answers[0] if present, else answer; first gold only", () => {
    const rec = { golden_answers: ["Barack Obama", "Obama"], answer: "ignored" };
    expect(goldAnswer(rec)).toBe("Barack Obama");
    expect(goldAnswer({ answer: "1,925 yards" })).toBe("1,925 yards");
    expect(goldAnswer({ golden_answers: null, answer: "a" } as never)).toBe("a");
    // The second alias is not used: a prediction matching only it scores 0 EM.
    expect(exactMatch("Obama", goldAnswer(rec))).toBe(false);
    expect(f1Score("Obama", goldAnswer(rec))).toBeCloseTo(2 / 3, 12); // P = 1, R = 1/2
  });

  test("a record without a usable gold answer is E_INVALID_ARGUMENT", () => {
    catchClara(() => goldAnswer({ golden_answers: [] }), "E_INVALID_ARGUMENT");
    catchClara(() => goldAnswer({}), "E_INVALID_ARGUMENT");
    expect(goldAnswer({ golden_answers: "whole string" })).toBe("whole string");
  });
});

describe("retrieval metrics", () => {
  test("recall@k = |top_k ∩ pos| / |pos|", () => {
    expect(recallAtK([3, 1, 4], [1, 2], 1)).toBe(0);
    expect(recallAtK([3, 1, 4], [1, 2], 2)).toBe(0.5);
    expect(recallAtK([3, 1, 4], [1, 2], 5)).toBe(0.5);
    expect(recallAtK([2, 1], [1, 2], 2)).toBe(1);
    expect(recallAtK([0, 1], [], 2)).toBe(0);
    expect(recallAtK([1, 1, 1], [1, 1], 3)).toBe(1); // sets on both sides
  });

  test("precision@k = hits / k", () => {
    expect(precisionAtK([3, 1, 4], [1, 4], 5)).toBe(2 / 5);
    expect(precisionAtK([3, 1, 4], [1, 4], 1)).toBe(0);
    expect(precisionAtK([1], [1], 3)).toBe(1 / 3);
  });

  test("means are over ALL samples; a sample without positives adds 0", () => {
    const samples = [
      { ranked: [0, 1, 2], positives: [0] },
      { ranked: [0, 1, 2], positives: [] },
      { ranked: [2, 1, 0], positives: [0, 1] },
    ];
    expect(meanRecallAtK(samples, 1)).toBeCloseTo((1 + 0 + 0) / 3, 12);
    expect(meanRecallAtK(samples, 3)).toBeCloseTo((1 + 0 + 1) / 3, 12);
    expect(meanPrecisionAtK(samples, 3)).toBeCloseTo((1 / 3 + 0 + 2 / 3) / 3, 12);
    expect(retrievalMetrics(samples, [1, 3])).toEqual({
      "recall@1": meanRecallAtK(samples, 1),
      "recall@3": meanRecallAtK(samples, 3),
      "precision@1": meanPrecisionAtK(samples, 1),
      "precision@3": meanPrecisionAtK(samples, 3),
    });
    expect(Object.keys(retrievalMetrics(samples))).toEqual(["recall@1", "recall@3", "recall@5", "precision@1", "precision@3", "precision@5"]);
  });

  test("bad arguments are E_INVALID_ARGUMENT", () => {
    catchClara(() => recallAtK([0], [0], 0), "E_INVALID_ARGUMENT");
    catchClara(() => precisionAtK([0], [0], 1.5), "E_INVALID_ARGUMENT");
    catchClara(() => meanRecallAtK([], 1), "E_INVALID_ARGUMENT");
  });
});

describe("answerMetrics", () => {
  test("means of F1, ACC (Cover-EM), EM and output length", () => {
    const m = answerMetrics([
      { prediction: "The cat sat on the mat", gold: "cat on mat" }, // f1 6/7, acc 1, em 0, 6 words
      { prediction: "Paris", gold: "paris" }, // 1, 1, 1, 1 word
      { prediction: "yes", gold: "no" }, // 0, 0, 0, 1 word
      { prediction: "", gold: "x" }, // 0, 0, 0, 0 words
    ]);
    expect(m.n).toBe(4);
    expect(m.f1).toBeCloseTo((6 / 7 + 1) / 4, 12);
    expect(m.acc).toBe(0.5);
    expect(m.em).toBe(0.25);
    expect(m.avgOutputLength).toBe(2);
  });
});

describe("compression-quality metrics", () => {
  test("rougeL: LCS F-measure over normalised tokens", () => {
    // "cat sat on mat" vs "cat is on mat": LCS "cat on mat" = 3, P = R = 3/4
    expect(rougeL("The cat sat on the mat", "the cat is on the mat")).toBeCloseTo(0.75, 12);
    // "x b c d" vs "d c b x": LCS = 1, P = R = 1/4
    expect(rougeL("x b c d", "d c b x")).toBeCloseTo(0.25, 12);
    expect(rougeL("same words here", "Same words, here.")).toBe(1);
    expect(rougeL("", "x")).toBe(0);
    expect(rougeL("x", "")).toBe(0);
    expect(rougeL("abc", "def")).toBe(0);
  });

  test("tokenF1: plain SQuAD F1 without the yes/no rule", () => {
    expect(tokenF1("yes it is", "yes")).toBeCloseTo(0.5, 12); // f1Score would give 0
    expect(tokenF1("", "")).toBe(1);
    expect(tokenF1("", "x")).toBe(0);
    expect(tokenF1("The cat sat on the mat", "cat on mat")).toBeCloseTo(6 / 7, 12);
  });

  test("keywordMatch: fraction of keywords found case-insensitively as substrings", () => {
    expect(keywordMatch("CLaRa uses Mistral-7B-Instruct", ["clara", "MISTRAL", "llama"])).toBeCloseTo(2 / 3, 12);
    expect(keywordMatch("compression", ["press"])).toBe(1); // substrings, not tokens
    expect(keywordMatch("", ["x"])).toBe(0);
    catchClara(() => keywordMatch("x", []), "E_INVALID_ARGUMENT");
  });
});

describe("memoryDiversity (the collapse diagnostic of bench:learning)", () => {
  const { memoryDiversity, meanSe, pairedGap } = require("../lib/eval/heldout") as typeof import("../lib/eval/heldout");
  const { tensor } = require("../lib/tensor") as typeof import("../lib/tensor");

  it("is 1 when every document compresses to the same memories and every slot is one vector", () => {
    const same = new Float32Array(3 * 2 * 4);
    for (let d = 0; d < 3; d++) for (let s = 0; s < 2; s++) same.set([1, 2, 3, 4], (d * 2 + s) * 4);
    expect(memoryDiversity(tensor("float32", [3, 2, 4], same))).toEqual({ betweenDocuments: 1, firstLastSlot: 1 });
  });

  it("is 0 for orthogonal documents and orthogonal slots", () => {
    // doc 0: slots e0, e1; doc 1: slots e2, e3 — every pair orthogonal.
    const x = new Float32Array(2 * 2 * 4);
    x[0] = 1; x[4 + 1] = 1; x[8 + 2] = 1; x[12 + 3] = 1;
    expect(memoryDiversity(tensor("float32", [2, 2, 4], x))).toEqual({ betweenDocuments: 0, firstLastSlot: 0 });
  });

  it("averages the pairwise cosines", () => {
    // Three one-slot documents: e0, e0, e1 → pairs (1, 0, 0) → 1/3.
    const x = new Float32Array([1, 0, 1, 0, 0, 1]);
    expect(memoryDiversity(tensor("float32", [3, 1, 2], x)).betweenDocuments).toBeCloseTo(1 / 3, 4);
  });

  it("refuses what is not float32 [N, n, H]", () => {
    expect(() => memoryDiversity(tensor("float32", [2, 4], new Float32Array(8)))).toThrow(/float32 \[N, n, H\]/);
  });

  it("meanSe and pairedGap give the mean and its standard error", () => {
    expect(meanSe([1, 2, 3, 4])).toEqual([2.5, +Math.sqrt(5 / 3 / 4).toFixed(4)]);
    expect(pairedGap([1, 1, 1], [0, 0, 0])).toEqual({ mean: 1, se: 0 });
  });
});
