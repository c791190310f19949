#!/usr/bin/env node
// make-example-data: writes small, deterministic training and evaluation data for all three
// CLaRa stages into example/ (our own synthetic data; Apple's stage-2/3 files are not public).
//
//   node dist/tools/make-example-data.js [--seed 42] [--out example]
//
// Every document is about an invented entity (a town, person, company, invention, river or
// mountain whose names are built from syllables) and states 4-8 facts about it. Each fact has
// a question with a short answer (a name, a number, a year, a word). Stage-1 records carry all
// the QA pairs of a document ("qa") or a reworded version of it ("paraphrase", rendered from the
// same facts with the other sentence variants, in another order). Stage-2/3 records are derived
// from the stage-1 records by lib/data/derive.ts, the same code that derives them from Apple's
// pretrain_data.jsonl. Held-out files (example/heldout/) use separate entities: no name of a
// held-out document appears in any training file.
//
// Same seed, same bytes: the only randomness is a seeded mulberry32.

import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { ClaraError } from "../lib";
import { deriveEndToEndRecords, deriveInstructionRecords } from "../lib/data";
import { formatJsonl } from "../lib/data/jsonl";
import { Random, subSeed } from "../lib/data/random";
import { endToEndRecordToJson, instructionRecordToJson, pretrainRecordToJson, type PretrainRecord } from "../lib/data/records";
import { writeFileAtomic } from "../lib/io/atomic";

export interface ExampleDataOptions {
  /** Default 42. */
  seed?: number;
  /** Training documents (default 400) and held-out documents (default 60). */
  trainDocs?: number;
  heldoutDocs?: number;
}

/** The sizes of the derived files (records); each derived record uses one QA pair. */
export const EXAMPLE_SIZES = {
  paraphraseShare: 0.25, // of the documents get a paraphrase record too (~20% of stage-1 records)
  instructionK: 5,
  endToEndCandidates: 20,
  trainEndToEnd: 200, // stage-3 records with 20 documents each are the bulk of the bytes
  heldoutInstructionPerDoc: 2,
} as const;

// ---------------------------------------------------------------------------------------
// The invented world

const SYLLABLES = [
  "ka", "lo", "ven", "mar", "ti", "sel", "dor", "ra", "quin", "bel", "tor", "fa", "nis", "vel", "zu", "mo", "ri", "ash",
  "ol", "en", "thar", "gri", "pe", "lu", "dra", "wen", "cas", "ith", "mir", "or", "ba", "ne", "sto", "vi", "hal", "un",
  "cor", "ya", "pim", "eth", "go", "sa", "rin", "tal", "bru", "kel",
];

const COLOURS = ["red", "blue", "green", "yellow", "orange", "purple", "white", "black", "grey", "brown", "pink", "teal", "crimson", "violet"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const PROFESSIONS = ["clockmaker", "cartographer", "botanist", "violinist", "glassblower", "architect", "astronomer", "beekeeper", "shipwright", "painter", "bookbinder", "engineer", "potter", "poet"];
const EXPORTS = ["wool", "salt", "copper", "glass beads", "cheese", "timber", "paper", "honey", "clay pots", "rope", "olive oil", "dried fish"];
const PRODUCTS = ["bicycles", "umbrellas", "typewriters", "ceramic tiles", "fishing nets", "pocket watches", "paper lamps", "wool coats", "garden tools", "copper pipes", "rowing boats", "board games"];
const ANIMALS = ["fox", "heron", "badger", "otter", "owl", "lynx", "stag", "hare", "crow", "beaver"];
const PURPOSES = ["weaving carpets", "pumping water", "measuring rainfall", "grinding grain", "printing maps", "sorting letters", "cooling milk", "drying fish", "cutting stone", "winding thread"];
const DEVICES = ["Loom", "Engine", "Lamp", "Press", "Clock", "Pump", "Compass", "Kiln", "Telescope", "Mill"];
const MATERIALS = ["brass", "oak", "iron", "copper", "walnut", "steel", "bronze", "pine", "glass", "tin"];
const FISH = ["silver trout", "river eel", "striped perch", "golden carp", "pike", "grayling"];
const MOUNTAIN_ANIMALS = ["mountain goat", "white fox", "snow hare", "grey eagle", "marmot", "ibex"];
const TITLE_ADJECTIVES = ["Silent", "Golden", "Hidden", "Last", "Northern", "Quiet", "Broken", "Distant", "Painted", "Winter"];
const TITLE_NOUNS = ["Harbour", "Garden", "Lantern", "Orchard", "Bridge", "Voyage", "Tower", "Letter", "Meadow", "Mirror"];
const COMPANY_SUFFIXES = ["Works", "Industries", "Company", "Brothers", "Trading", "Mills"];

/** Invents names; every name it returns is new (no two entities or referenced names collide). */
class Names {
  private readonly used = new Set<string>();

  constructor(private readonly rng: Random) {}

  /** A capitalised word of `lo`..`hi` syllables (more once those run short), never returned before. */
  word(lo = 2, hi = 3): string {
    // Every 200 misses allow one more syllable: a large world uses up the short words, and
    // without this the search for an unused one never ends.
    for (let misses = 0; ; misses++) {
      const n = this.rng.range(lo, hi + Math.floor(misses / 200));
      let w = "";
      for (let i = 0; i < n; i++) w += this.rng.pick(SYLLABLES);
      if (w.length < 4 || /(.)\1\1/.test(w)) continue;
      const name = w[0].toUpperCase() + w.slice(1);
      if (this.used.has(name)) continue;
      this.used.add(name);
      return name;
    }
  }

  person(): string {
    return `${this.word(2, 2)} ${this.word(2, 3)}`;
  }
}

interface Ctx {
  rng: Random;
  names: Names;
}

/** A sentence with two wordings; {N} is the entity, {V} the value, {aV} "a"/"an" + the value. */
type Wordings = readonly [string, string];

interface FactSpec {
  /** `facts` holds the values drawn so far for this entity, in the order facts are declared. */
  value: (c: Ctx, facts: Map<string, string>) => string;
  sentences: Wordings;
  question: string;
}

interface KindSpec {
  kind: string;
  name: (c: Ctx) => string;
  intro: Wordings;
  facts: Record<string, FactSpec>;
}

const year = (lo: number, hi: number) => (c: Ctx) => String(c.rng.range(lo, hi));
const num = (lo: number, hi: number) => (c: Ctx) => String(c.rng.range(lo, hi));
const oneOf = (items: readonly string[]) => (c: Ctx) => c.rng.pick(items);
const person = (c: Ctx) => c.names.person();
const town = (c: Ctx) => c.names.word();

const KINDS: readonly KindSpec[] = [
  {
    kind: "town",
    name: (c) => c.names.word(),
    intro: ["{N} is a small town in a quiet valley.", "The small town of {N} sits in a quiet valley."],
    facts: {
      founded: { value: year(1100, 1899), sentences: ["{N} was founded in {V}.", "The town of {N} dates back to {V}, the year it was founded."], question: "In what year was {N} founded?" },
      founder: { value: person, sentences: ["{N} was founded by {V}.", "The founder of {N} was a traveller named {V}."], question: "Who founded {N}?" },
      population: { value: num(1200, 98000), sentences: ["{N} has a population of {V} people.", "The population of {N} is {V}."], question: "What is the population of {N}?" },
      river: { value: (c) => c.names.word(), sentences: ["{N} lies on the banks of the {V} River.", "The {V} River runs right through {N}."], question: "On which river does {N} lie?" },
      province: { value: (c) => c.names.word(), sentences: ["{N} is in the province of {V}.", "The province that {N} belongs to is {V}."], question: "In which province is {N}?" },
      export: { value: oneOf(EXPORTS), sentences: ["The main export of {N} is {V}.", "{N} is best known for exporting {V}."], question: "What is the main export of {N}?" },
      flag: { value: oneOf(COLOURS), sentences: ["The flag of {N} is {V}.", "{N} flies a {V} flag."], question: "What colour is the flag of {N}?" },
      festival: { value: oneOf(MONTHS), sentences: ["Every year in {V}, {N} holds a lantern festival.", "The lantern festival of {N} takes place each {V}."], question: "In which month does {N} hold its lantern festival?" },
      mayor: { value: person, sentences: ["The current mayor of {N} is {V}.", "{N} is governed by its mayor, {V}."], question: "Who is the mayor of {N}?" },
    },
  },
  {
    kind: "person",
    name: (c) => c.names.person(),
    intro: ["{N} is remembered as a figure of local history.", "Local historians still write about {N}."],
    facts: {
      born: { value: year(1700, 1930), sentences: ["{N} was born in {V}.", "{N} was born in the year {V}."], question: "In what year was {N} born?" },
      died: {
        value: (c, f) => String((f.has("born") ? Number(f.get("born")) : c.rng.range(1700, 1930)) + c.rng.range(35, 90)),
        sentences: ["{N} died in {V}.", "The life of {N} ended in {V}."],
        question: "In what year did {N} die?",
      },
      hometown: { value: town, sentences: ["{N} grew up in the town of {V}.", "The town where {N} grew up is {V}."], question: "In which town did {N} grow up?" },
      profession: { value: oneOf(PROFESSIONS), sentences: ["{N} worked as {aV}.", "By profession, {N} was {aV}."], question: "What was the profession of {N}?" },
      colour: { value: oneOf(COLOURS), sentences: ["The favourite colour of {N} was {V}.", "{N} always said that {V} was the finest colour."], question: "What was the favourite colour of {N}?" },
      children: { value: num(2, 9), sentences: ["{N} had {V} children.", "In total, {N} raised {V} children."], question: "How many children did {N} have?" },
      teacher: { value: person, sentences: ["{N} trained under {V}.", "{N} learned the craft from {V}."], question: "Who taught {N}?" },
      work: {
        value: (c) => `The ${c.rng.pick(TITLE_ADJECTIVES)} ${c.rng.pick(TITLE_NOUNS)}`,
        sentences: ["The best-known work of {N} is called {V}.", "{N} is remembered mainly for a work called {V}."],
        question: "What is the best-known work of {N}?",
      },
      dog: { value: (c) => c.names.word(2, 2), sentences: ["{N} kept a dog named {V}.", "A dog called {V} lived with {N}."], question: "What was the name of the dog of {N}?" },
    },
  },
  {
    kind: "company",
    name: (c) => `${c.names.word()} ${c.rng.pick(COMPANY_SUFFIXES)}`,
    intro: ["{N} is a company that began as a family business.", "{N} started out as a small family business."],
    facts: {
      founded: { value: year(1800, 2015), sentences: ["{N} was founded in {V}.", "The company {N} dates from {V}, when it was founded."], question: "In what year was {N} founded?" },
      founder: { value: person, sentences: ["{N} was founded by {V}.", "The founder of {N} was {V}."], question: "Who founded {N}?" },
      headquarters: { value: town, sentences: ["{N} has its headquarters in {V}.", "The head office of {N} is in the town of {V}."], question: "In which town is {N} headquartered?" },
      product: { value: oneOf(PRODUCTS), sentences: ["{N} makes {V}.", "The main product of {N} is {V}."], question: "What does {N} make?" },
      employees: { value: num(12, 9000), sentences: ["{N} employs {V} people.", "The workforce of {N} numbers {V} people."], question: "How many people does {N} employ?" },
      logo: { value: oneOf(COLOURS), sentences: ["The logo of {N} is {V}.", "{N} uses a {V} logo."], question: "What colour is the logo of {N}?" },
      chief: { value: person, sentences: ["{N} is run by {V}.", "The person who runs {N} today is {V}."], question: "Who runs {N}?" },
      mascot: { value: oneOf(ANIMALS), sentences: ["The mascot of {N} is a {V}.", "{N} chose a {V} as its mascot."], question: "What animal is the mascot of {N}?" },
    },
  },
  {
    kind: "invention",
    name: (c) => `the ${c.names.word()} ${c.rng.pick(DEVICES)}`,
    intro: ["{N} is an early machine that museums still display.", "Museums still display {N}, an early machine."],
    facts: {
      inventor: { value: person, sentences: ["{N} was invented by {V}.", "The inventor of {N} was {V}."], question: "Who invented {N}?" },
      year: { value: year(1600, 1990), sentences: ["{N} was first built in {V}.", "Work on {N} was completed in {V}."], question: "In what year was {N} first built?" },
      place: { value: town, sentences: ["{N} was built in the town of {V}.", "The town where {N} was built is {V}."], question: "In which town was {N} built?" },
      purpose: { value: oneOf(PURPOSES), sentences: ["{N} was designed for {V}.", "People used {N} for {V}."], question: "What was {N} designed for?" },
      weight: { value: num(3, 900), sentences: ["{N} weighs {V} kilograms.", "The weight of {N} is {V} kilograms."], question: "How many kilograms does {N} weigh?" },
      material: { value: oneOf(MATERIALS), sentences: ["{N} is made mostly of {V}.", "Most of {N} is built from {V}."], question: "What material is {N} mostly made of?" },
      copies: { value: num(2, 60), sentences: ["Only {V} copies of {N} were ever made.", "The makers of {N} produced just {V} copies."], question: "How many copies of {N} were made?" },
      colour: { value: oneOf(COLOURS), sentences: ["{N} was painted {V}.", "The paint on {N} is {V}."], question: "What colour was {N} painted?" },
    },
  },
  {
    kind: "river",
    name: (c) => `the ${c.names.word()} River`,
    intro: ["{N} is a river that crosses several provinces.", "Several provinces are crossed by {N}."],
    facts: {
      length: { value: num(40, 2900), sentences: ["{N} is {V} kilometres long.", "The length of {N} is {V} kilometres."], question: "How many kilometres long is {N}?" },
      source: { value: (c) => `Mount ${c.names.word()}`, sentences: ["{N} rises on the slopes of {V}.", "The source of {N} is on {V}."], question: "On which mountain does {N} rise?" },
      mouth: {
        value: (c) => (c.rng.chance(0.5) ? `Lake ${c.names.word()}` : `${c.names.word()} Bay`),
        sentences: ["{N} flows into {V}.", "The waters of {N} end in {V}."],
        question: "What does {N} flow into?",
      },
      town: { value: town, sentences: ["The largest town on {N} is {V}.", "{V} is the largest town along {N}."], question: "What is the largest town on {N}?" },
      fish: { value: oneOf(FISH), sentences: ["{N} is famous for its {V}.", "Anglers come to {N} for its {V}."], question: "What fish is {N} famous for?" },
      water: { value: oneOf(COLOURS), sentences: ["The water of {N} looks {V}.", "{N} has water that looks {V}."], question: "What colour does the water of {N} look?" },
      bridges: { value: num(2, 40), sentences: ["There are {V} bridges across {N}.", "{N} is crossed by {V} bridges."], question: "How many bridges cross {N}?" },
      mapped: { value: person, sentences: ["{N} was first mapped by {V}.", "The first map of {N} was drawn by {V}."], question: "Who first mapped {N}?" },
    },
  },
  {
    kind: "mountain",
    name: (c) => `Mount ${c.names.word()}`,
    intro: ["{N} is a mountain with a rounded summit.", "The summit of {N} is broad and rounded."],
    facts: {
      height: { value: num(800, 8400), sentences: ["{N} is {V} metres high.", "The height of {N} is {V} metres."], question: "How many metres high is {N}?" },
      range: { value: (c) => `${c.names.word()} Range`, sentences: ["{N} is part of the {V}.", "The {V} includes {N}."], question: "Which mountain range is {N} part of?" },
      climbed: { value: year(1780, 1990), sentences: ["{N} was first climbed in {V}.", "The first ascent of {N} took place in {V}."], question: "In what year was {N} first climbed?" },
      climber: { value: person, sentences: ["The first person to climb {N} was {V}.", "{V} was the first to reach the top of {N}."], question: "Who first climbed {N}?" },
      town: { value: town, sentences: ["The nearest town to {N} is {V}.", "{V} is the town closest to {N}."], question: "What is the nearest town to {N}?" },
      snow: { value: num(2, 11), sentences: ["The top of {N} is covered in snow for {V} months a year.", "Snow covers the top of {N} {V} months a year."], question: "For how many months a year is the top of {N} covered in snow?" },
      animal: { value: oneOf(MOUNTAIN_ANIMALS), sentences: ["{N} is home to a rare {V}.", "A rare {V} lives on {N}."], question: "What rare animal lives on {N}?" },
      hut: { value: (c) => c.names.word(), sentences: ["Climbers on {N} rest in the {V} Hut.", "The mountain hut on {N} is called the {V} Hut."], question: "What is the name of the mountain hut on {N}?" },
    },
  },
];

const FILLERS: readonly Wordings[] = [
  ["Little else about {N} is recorded in the regional archives.", "The regional archives record little else about {N}."],
  ["Many visitors ask about {N} every year.", "Every year, many visitors ask about {N}."],
  ["Older residents still tell stories about {N}.", "Stories about {N} are still told by older residents."],
  ["A short guide to {N} is sold at the local library.", "The local library sells a short guide to {N}."],
];

const MIN_WORDS = 60;
const MAX_WORDS = 150;

export interface ExampleEntity {
  kind: string;
  name: string;
  doc: string;
  paraphrase: string;
  questions: string[];
  answers: string[];
}

interface Sentence {
  wordings: Wordings;
  value?: string;
  /** Which wording the document uses; the paraphrase uses the other. */
  pick: number;
}

function render(template: string, name: string, value = ""): string {
  const article = /^[aeiou]/i.test(value) ? "an" : "a";
  const s = template.replace(/\{aV\}/g, `${article} ${value}`).replace(/\{V\}/g, value).replace(/\{N\}/g, name);
  return s[0].toUpperCase() + s.slice(1);
}

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

/** One invented entity: its document, its paraphrase and its QA pairs. */
export function makeEntity(c: Ctx): ExampleEntity {
  const spec = c.rng.pick(KINDS);
  const name = spec.name(c);
  const keys = Object.keys(spec.facts);
  const count = c.rng.range(4, Math.min(8, keys.length));
  // Values are drawn in declaration order (a death year after its birth year); the sentences
  // are shuffled afterwards.
  const chosen = c.rng.sample(keys.length, count).sort((a, b) => a - b).map((i) => keys[i]);
  const facts = new Map<string, string>();
  for (const key of chosen) facts.set(key, spec.facts[key].value(c, facts));

  const factSentences: Sentence[] = [...facts].map(([key, value]) => ({ wordings: spec.facts[key].sentences, value, pick: c.rng.int(2) }));
  c.rng.shuffle(factSentences);
  const intro: Sentence = { wordings: spec.intro, pick: c.rng.int(2) };
  const fillers: Sentence[] = [];
  const fillerOrder = c.rng.shuffle(FILLERS.map((_, i) => i));
  const text = (list: Sentence[], other: boolean) => list.map((s) => render(s.wordings[other ? 1 - s.pick : s.pick], name, s.value)).join(" ");
  const title = `This is a document about ${name}.`;
  let doc = `${title} ${text([intro, ...factSentences], false)}`;
  while (words(doc) < MIN_WORDS && fillers.length < fillerOrder.length) {
    fillers.push({ wordings: FILLERS[fillerOrder[fillers.length]], pick: c.rng.int(2) });
    doc = `${title} ${text([intro, ...factSentences, ...fillers], false)}`;
  }
  if (words(doc) < MIN_WORDS || words(doc) > MAX_WORDS) throw new Error(`internal: a ${words(doc)}-word document about ${name}`);
  const reordered = c.rng.shuffle([...factSentences]);
  const paraphrase = text([intro, ...reordered, ...fillers], true);

  const questions: string[] = [];
  const answers: string[] = [];
  for (const [key, value] of facts) {
    questions.push(render(spec.facts[key].question, name));
    answers.push(value);
  }
  return { kind: spec.kind, name, doc, paraphrase, questions, answers };
}

// ---------------------------------------------------------------------------------------
// The files

/** The stage-1 records of some entities: one "qa" record each, plus some "paraphrase" ones, shuffled. */
function pretrainRecords(entities: readonly ExampleEntity[], rng: Random): PretrainRecord[] {
  const records: PretrainRecord[] = [];
  for (const e of entities) {
    records.push({ dataType: "qa", questions: e.questions, answers: e.answers, doc: e.doc });
    if (rng.chance(EXAMPLE_SIZES.paraphraseShare)) records.push({ dataType: "paraphrase", questions: [], answers: [e.paraphrase], doc: e.doc });
  }
  return rng.shuffle(records);
}

/** All files of the example data, as relative path -> content. Pure: same options, same bytes. */
export function generateExampleData(options: ExampleDataOptions = {}): Map<string, string> {
  const seed = options.seed ?? 42;
  const trainDocs = options.trainDocs ?? 400;
  const heldoutDocs = options.heldoutDocs ?? 60;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new ClaraError("E_INVALID_ARGUMENT", `Expected an integer from 0 to 4294967295 for seed but received ${seed}`, { field: "seed" });
  const rng = new Random(subSeed(seed, "world"));
  const ctx: Ctx = { rng, names: new Names(rng) };
  const entities = Array.from({ length: trainDocs + heldoutDocs }, () => makeEntity(ctx));
  const train = entities.slice(0, trainDocs);
  const heldout = entities.slice(trainDocs);

  const files = new Map<string, string>();
  const counts: Record<string, number> = {};
  const add = (file: string, rows: unknown[]) => {
    files.set(file, formatJsonl(rows));
    counts[file] = rows.length;
  };
  for (const [dir, list] of [["", train], ["heldout/", heldout]] as const) {
    const pretrain = pretrainRecords(list, new Random(subSeed(seed, `${dir}pretrain`)));
    const isTrain = dir === "";
    add(`${dir}pretrain.jsonl`, pretrain.map(pretrainRecordToJson));
    const instruction = deriveInstructionRecords(pretrain, {
      k: EXAMPLE_SIZES.instructionK,
      seed,
      questionsPerDoc: isTrain ? 1 : EXAMPLE_SIZES.heldoutInstructionPerDoc,
    });
    add(`${dir}instruction.jsonl`, instruction.map(instructionRecordToJson));
    const endToEnd = deriveEndToEndRecords(pretrain, {
      candidates: EXAMPLE_SIZES.endToEndCandidates,
      seed,
      questionsPerDoc: 1,
      ...(isTrain ? { limit: EXAMPLE_SIZES.trainEndToEnd } : {}),
    });
    add(`${dir}end_to_end.jsonl`, endToEnd.map(endToEndRecordToJson));
  }
  files.set("README.md", readme(seed, trainDocs, heldoutDocs, counts, files));
  return files;
}

function readme(seed: number, trainDocs: number, heldoutDocs: number, counts: Record<string, number>, files: Map<string, string>): string {
  const row = (f: string) => `| \`${f}\` | ${counts[f]} | ${Buffer.byteLength(files.get(f)!, "utf8")} |`;
  return `# Example data (generated; do not edit)

Synthetic CLaRa training data for all three stages, written by \`tools/make-example-data.ts\`:

    npx tsc -p tsconfig.json && node dist/tools/make-example-data.js --seed ${seed} --out example

The same seed gives byte-identical files (a test checks that these files match a fresh run).

Every document is about an **invented** entity (town, person, company, invention, river or
mountain; names built from syllables) and states 4-8 facts about it in 60-150 words, starting
"This is a document about <Name>.". Questions ask for one fact each; answers are short (a name,
a number, a year, a word).

| file | records | bytes |
|---|---|---|
${["pretrain.jsonl", "instruction.jsonl", "end_to_end.jsonl", "heldout/pretrain.jsonl", "heldout/instruction.jsonl", "heldout/end_to_end.jsonl"].map(row).join("\n")}

- \`pretrain.jsonl\` (stage 1): one \`"qa"\` record per document with all its QA pairs, plus a
  \`"paraphrase"\` record for about a quarter of the documents (the same facts reworded and
  reordered; about 20% of the records). Fields: \`data_type, question, answers, docs\` (1 doc).
- \`instruction.jsonl\` (stage 2): \`question, docs\` (exactly ${EXAMPLE_SIZES.instructionK}: the gold document and
  ${EXAMPLE_SIZES.instructionK - 1} distractors, gold at a random position), \`answer\` (the short answer; there is no teacher
  model here) and \`gold_answer\` (the same).
- \`end_to_end.jsonl\` (stage 3): \`question, docs\` (${EXAMPLE_SIZES.endToEndCandidates} candidates), \`answer\`, \`pos_index\` (\`[i]\`, the gold).

Stage-2/3 records come from the stage-1 records through \`lib/data/derive.ts\` (one QA pair per
document, chosen at random; distractors are other documents of the same split).

**Split.** ${trainDocs} training documents (top level) and ${heldoutDocs} held-out documents (\`heldout/\`)
about separate entities: no entity, and no name mentioned in a held-out document, appears in a
training file. Held-out stage-2/3 distractors are held-out documents too. Evaluate on
\`heldout/\`; \`heldout/pretrain.jsonl\` holds all held-out QA pairs (and some paraphrases).
`;
}

/** Writes the example data under `out` (created if needed) and returns what it wrote. */
export function makeExampleData(options: ExampleDataOptions & { out?: string } = {}): { file: string; bytes: number }[] {
  const out = options.out ?? "example";
  const written: { file: string; bytes: number }[] = [];
  for (const [rel, content] of generateExampleData(options)) {
    const file = path.join(out, rel);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
    } catch (e) {
      throw new ClaraError("E_IO", `Could not create ${path.dirname(file)}: ${(e as Error).message}`, { file, cause: e });
    }
    const bytes = Buffer.from(content, "utf8");
    writeFileAtomic(file, bytes);
    written.push({ file, bytes: bytes.length });
  }
  return written;
}

const USAGE = `Usage: node dist/tools/make-example-data.js [--seed 42] [--out example]

Writes deterministic synthetic CLaRa data for stages 1-3 (and a held-out split) into --out.`;

/** The command line; returns the exit code. */
export function main(argv: string[]): number {
  let values: { seed?: string; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { seed: { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`make-example-data: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const seed = values.seed === undefined ? 42 : Number(values.seed);
  if (!/^\d+$/.test(values.seed ?? "42") || seed > 0xffffffff) {
    console.error(`make-example-data: --seed must be an integer from 0 to 4294967295, not ${JSON.stringify(values.seed)}\n\n${USAGE}`);
    return 2;
  }
  try {
    for (const { file, bytes } of makeExampleData({ seed, out: values.out ?? "example" })) console.log(`${file}  ${bytes} bytes`);
    return 0;
  } catch (e) {
    console.error(`make-example-data: ${(e as Error).message}`);
    return e instanceof ClaraError ? 2 : 1;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
