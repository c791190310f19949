// The text of the sample paper (knowledge_data/sample_paper.pdf): our own short description of
// this project and of its bundled example data, written to exercise the PDF pipeline: a title
// block, an abstract, numbered sections and subsections, numbers, a table, references and an
// appendix. tools/make-sample-pdf.ts lays it out; knowledge_data/sample_paper_qa.jsonl asks
// about its sentences. Changing a sentence here means checking that QA file's evidence.

export type PaperBlock =
  | { kind: "heading"; text: string; level: 1 | 2 }
  | { kind: "paragraph"; text: string }
  | { kind: "reference"; text: string };

export interface PaperTable {
  /** Column headers and rows (cells are single lines). */
  header: string[];
  rows: string[][];
  caption: string;
}

export interface SamplePaper {
  title: string[];
  authors: string;
  runningHeader: string;
  blocks: PaperBlock[];
  /** Placed across both columns at the top of `page`. */
  table: PaperTable & { page: number };
}

const h1 = (text: string): PaperBlock => ({ kind: "heading", text, level: 1 });
const h2 = (text: string): PaperBlock => ({ kind: "heading", text, level: 2 });
const p = (text: string): PaperBlock => ({ kind: "paragraph", text });
const ref = (text: string): PaperBlock => ({ kind: "reference", text });

export const SAMPLE_PAPER: SamplePaper = {
  title: ["Compressed Retrieval on a Laptop:", "CLaRa on MLX with Synthetic Example Data"],
  authors: "The @clara/mlx project (a sample document for testing the evaluation pipeline)",
  runningHeader: "CLaRa on MLX: a sample paper for the PDF evaluation pipeline",
  blocks: [
    h1("Abstract"),
    p(
      "We describe @clara/mlx, a Node.js package that trains and runs CLaRa, a retrieval-augmented generation method that " +
        "compresses every document into a few continuous memory vectors. The package keeps the numerical work in a C++ core " +
        "built on MLX and exposes a typed TypeScript interface. Compression, retrieval and answer generation share one frozen " +
        "base model that carries three LoRA adapters. This short paper explains the method, the synthetic example data that " +
        "ships with the package, and the evaluation protocol that reads a PDF such as this one. With the default compression " +
        "rate of 32, a document of 256 tokens becomes 8 memory vectors. The paper itself serves as a test document: its " +
        "sections, numbers and table are the material for a small set of hand-written questions.",
    ),
    h1("1 Introduction"),
    p(
      "Retrieval-augmented generation answers a question by placing retrieved passages in the prompt of a language model. " +
        "Long prompts are expensive, and the retriever and the generator are usually trained apart from each other. CLaRa [1] " +
        "addresses both problems: a compressor turns each passage into a short sequence of continuous vectors, and a query " +
        "reasoner ranks the compressed passages in the same vector space that the generator reads. Because the top-k selection " +
        "is made differentiable, the answer loss of the generator can train the retriever without relevance labels.",
    ),
    p(
      "Our implementation targets people who want to study the method on their own machine. The package runs on Apple silicon " +
        "through Metal and on Linux through the CPU or CUDA back ends of MLX [4]. All tensors stay on the native side, and " +
        "JavaScript only sees token ids, masks and the final scores. The default base model is SmolLM2-135M-Instruct, which is " +
        "small enough to train all three stages on a laptop in minutes. Larger models of the Llama family can be loaded from " +
        "Hugging Face folders or from GGUF files.",
    ),
    p(
      "The rest of this paper is organised as follows. Section 2 describes the compressor, the generator and the query " +
        "reasoner. Section 3 describes the example data, the training settings and the metrics. Section 4 summarises what the " +
        "sample paper is for, and the appendix lists the prompt templates.",
    ),
    h1("2 Method"),
    p(
      "CLaRa uses one frozen decoder-only language model. Three named LoRA adapters [2] specialise it for three roles: the " +
        "compressor, the generator and the query reasoner. Only one adapter is active in any forward pass. Each adapter has a " +
        "rank of 16, a scaling factor alpha of 32 and a dropout of 0.1, and it is applied to every linear layer of the " +
        "transformer blocks. The weights of the base model never change.",
    ),
    h2("2.1 Compression"),
    p(
      "The compressor reads a document followed by a fixed number of special memory tokens. The number of memory tokens is " +
        "the document length divided by the compression rate. With the default document length of 256 tokens and a " +
        "compression rate of 32, each document is represented by 8 memory tokens. The compressed document is the final hidden " +
        "state at the memory positions, taken after the last normalisation layer, so a document becomes a matrix with one row " +
        "per memory token and one column per hidden unit.",
    ),
    p(
      "During the first stage the compressor is trained together with a generator that must answer questions about the " +
        "document, or paraphrase it, from the memory vectors alone. An auxiliary loss keeps the mean of the memory states close " +
        "to the mean of the document token states. This mean squared error term has a weight of 0.1. We call the first stage " +
        "salient compressor pretraining, because the questions steer the compressor towards the facts that matter.",
    ),
    h2("2.2 Retrieval"),
    p(
      "In the third stage the compressor is frozen and a query reasoner encodes the question into the same space as the " +
        "compressed documents. The query reasoner starts as a copy of the compressor adapter. Relevance is the cosine " +
        "similarity between the flattened query vectors and the flattened document vectors, divided by a temperature of 0.02. " +
        "A straight-through top-k operator selects five documents: the forward pass uses the hard selection, while the " +
        "backward pass follows the softmax weights. The generator then answers from the selected compressed documents. Only " +
        "the next-token prediction loss is used in this stage, so the ranking is learned from the answers alone.",
    ),
    p(
      "The second stage sits between the two. It tunes the compressor on instruction data with five compressed documents per " +
        "question, and it trains a generator adapter that starts from scratch. Table 1 lists the trained parts, the number of " +
        "documents per prompt and the learning rate of each stage.",
    ),
    h1("3 Experiments"),
    p(
      "This section describes the data and the settings that the demo uses. It reports no benchmark numbers: the results of " +
        "a run are written by the evaluation pipeline to a report of its own.",
    ),
    h2("3.1 Data"),
    p(
      "The package ships synthetic example data for all three stages, written by a seeded generator. Every document describes " +
        "an invented entity, such as a town, a person, a company, an invention, a river or a mountain. Its names are built from " +
        "syllables, so that no fact can be known in advance. A document states between 4 and 8 facts in 60 to 150 words, and " +
        "each fact comes with a question whose answer is a name, a number, a year or a single word.",
    ),
    p(
      "The training split has 400 documents, and the held-out split has 60 documents about separate entities. The stage-1 " +
        "file contains 500 records: one question-answering record per document and a paraphrase record for about a quarter of " +
        "the documents. The stage-2 file has 400 records with five documents each, one of which holds the answer. The stage-3 " +
        "file has 200 records with 20 candidate documents each, and the index of the gold document is stored in the pos_index " +
        "field. The same seed always produces byte-identical files, which a test verifies.",
    ),
    h2("3.2 Settings"),
    p(
      "The default base model has 30 layers and a hidden size of 576. Stages 1 and 2 use a learning rate of 1e-4 with a cosine " +
        "schedule that decays to a tenth of the peak after a warm-up of 3 percent of the steps. Stage 3 uses a constant learning " +
        "rate of 5e-6. The learning rate of stage 3 is 20 times smaller than that of stages 1 and 2. Stages 1 and 2 use a batch " +
        "of 128 examples, whereas stage 3 uses a batch of 32 examples. All stages use AdamW with betas of 0.9 and 0.95, no " +
        "weight decay, and gradients clipped to a norm of 1.0.",
    ),
    p(
      "The evaluation reads a PDF, splits it into sections and chunks of at most 256 tokens, and runs three scenarios. In the " +
        "zero-shot scenario the base model answers without any context. In the retrieval scenario the five best chunks are " +
        "selected either by BM25 [3] over the text or by the query reasoner over the compressed chunks, and the answer is " +
        "generated from the compressed chunks. The same base model reading the raw text of the chunks serves as a reference. " +
        "In the compression scenario each section is compressed and then reconstructed with a paraphrase prompt.",
    ),
    h2("3.3 Metrics"),
    p(
      "Answers are scored with exact match, token F1 and cover exact match, following the normalisation of SQuAD [5]. Cover " +
        "exact match counts an answer as correct when every token of the reference answer appears in it. Retrieval is scored " +
        "with recall at 1, 3 and 5 of the chunk that holds the evidence. The compressed context of five chunks takes 40 memory " +
        "tokens, while the same chunks as raw text take up to 1280 tokens. Reconstruction is scored with ROUGE-L, token F1 and " +
        "the cosine similarity of mean-pooled embeddings.",
    ),
    h1("4 Conclusion"),
    p(
      "We presented a compact implementation of CLaRa that trains all three stages from Node.js, together with synthetic data " +
        "and an evaluation pipeline for PDF documents. The sample paper exists so that the pipeline can be tested without a " +
        "user's document. Its headings, numbers and table are known, and a hand-written set of 20 questions refers to sentences " +
        "in it. Evaluating another paper only requires dropping its PDF into the knowledge_data folder.",
    ),
    h1("Limitations"),
    p(
      "The sample paper is short, and its questions were written by the authors of the package, so scores on it say little " +
        "about real papers. The small default model answers few questions correctly even with the right context, and a report " +
        "should always be read next to the zero-shot and raw-text baselines. The extraction heuristics handle common " +
        "two-column layouts, but formulas, figures and tables lose their structure, and a scanned PDF without a text layer " +
        "cannot be read at all.",
    ),
    h1("References"),
    ref("[1] J. He et al. CLaRa: Bridging retrieval and generation with continuous latent reasoning. arXiv:2511.18659, 2025."),
    ref("[2] E. J. Hu et al. LoRA: Low-rank adaptation of large language models. In ICLR, 2022."),
    ref("[3] S. Robertson and H. Zaragoza. The probabilistic relevance framework: BM25 and beyond. Foundations and Trends in Information Retrieval, 2009."),
    ref("[4] A. Hannun et al. MLX: Efficient and flexible machine learning on Apple silicon. Software, 2023."),
    ref("[5] P. Rajpurkar et al. SQuAD: 100,000+ questions for machine comprehension of text. In EMNLP, 2016."),
    h1("A Prompt Templates"),
    p(
      "The generator prompts use the chat template of the base model. The answer prompt of stages 2 and 3 asks the model to " +
        "extract relevant information from the provided documents and to answer as briefly as possible. The user message " +
        "starts with the word Background, followed by the memory slots, and ends with the question. Each memory slot consists " +
        "of the memory tokens of one document followed by a separator token. The compressor input starts with an encoder token " +
        "and the beginning-of-sequence token, followed by the document text and the end-of-sequence token. It is padded on the " +
        "left to 259 tokens before the memory tokens are appended.",
    ),
    h1("B Example Records"),
    p(
      "A stage-1 record of the example data has the fields data_type, question, answers and docs. In a question-answering " +
        "record the questions and the answers are lists of equal length, and docs holds one document. A paraphrase record " +
        "states the facts of its document in other words and in another order. A stage-2 record has a question, five " +
        "documents and an answer, and a stage-3 record adds the pos_index list and holds 20 documents. Documents of the " +
        "held-out split never mention a name that occurs in a training file, so the held-out questions test compression " +
        "rather than memory.",
    ),
  ],
  table: {
    page: 2,
    header: ["Stage", "Trained parts", "Documents per prompt", "Learning rate", "Loss"],
    rows: [
      ["1 (pretraining)", "compressor, generator, memory rows", "1", "1e-4", "NTP + 0.1 MSE"],
      ["2 (instruction)", "compressor, new generator", "5", "1e-4", "NTP + 0.1 MSE"],
      ["3 (end to end)", "query reasoner, generator", "5 of 20", "5e-6", "NTP"],
    ],
    caption:
      "Table 1: The three training stages. The compressor is frozen in stage 3, and the generator adapter is re-initialised at the start of stage 2.",
  },
};

/** Where a long word may be broken across lines (each "-" is a break point). */
export const HYPHENATION: Record<string, string> = {
  compression: "com-pres-sion",
  compressor: "com-pres-sor",
  compressed: "com-pressed",
  retrieval: "re-trie-val",
  retriever: "re-triev-er",
  generation: "gen-er-a-tion",
  generator: "gen-er-a-tor",
  documents: "doc-u-ments",
  document: "doc-u-ment",
  evaluation: "eval-u-a-tion",
  implementation: "im-ple-men-ta-tion",
  instruction: "in-struc-tion",
  information: "in-for-ma-tion",
  paraphrase: "para-phrase",
  reconstructed: "re-con-struct-ed",
  normalisation: "nor-mal-i-sa-tion",
  differentiable: "dif-fer-en-tiable",
  continuous: "con-tin-u-ous",
  numerical: "nu-mer-i-cal",
  interface: "in-ter-face",
  specialise: "spe-cial-ise",
  transformer: "trans-former",
  pretraining: "pre-train-ing",
  auxiliary: "aux-il-iary",
  invented: "in-vent-ed",
  syllables: "syl-la-bles",
  question: "ques-tion",
  questions: "ques-tions",
  scenario: "sce-nar-io",
  scenarios: "sce-nar-ios",
  expensive: "ex-pen-sive",
  addresses: "ad-dress-es",
  passages: "pas-sag-es",
  selection: "se-lec-tion",
  similarity: "sim-i-lar-i-ty",
  temperature: "tem-per-a-ture",
  flattened: "flat-tened",
  identical: "iden-ti-cal",
  separate: "sep-a-rate",
  synthetic: "syn-thet-ic",
  Relevance: "Rel-e-vance",
  presented: "pre-sent-ed",
  organised: "or-gan-ised",
  represented: "rep-re-sent-ed",
  positions: "po-si-tions",
  prediction: "pre-dic-tion",
  reference: "ref-er-ence",
  templates: "tem-plates",
  separator: "sep-a-ra-tor",
  appended: "ap-pend-ed",
  embeddings: "em-bed-dings",
  schedule: "sched-ule",
};
