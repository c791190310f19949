// NativeModel's CLaRa methods: memory tokens, compression, the stage losses, retrieval and
// generation from compressed documents. Conversions only; the method lives in native/clara/.
#include "clara/compressor.h"
#include "clara/generator.h"
#include "clara/memory_input.h"
#include "clara/memory_tokens.h"
#include "clara/stages.h"
#include "convert.h"
#include "errors.h"
#include "model/generate.h"
#include "model/llama.h"
#include "model_convert.h"
#include "model_handle.h"
#include "model_state.h"
#include "train/data_parallel.h"

namespace clara::binding {

namespace {

ClaraSpec to_clara_spec(Napi::Env env, Napi::Value v) {
  Napi::Object o = object_arg(env, v, "spec");
  ClaraSpec s;
  s.n_mem = required_int(o, "nMem", 1, 4096);
  s.k = required_int(o, "k", 1, 4096);
  s.mem0_id = required_int(o, "mem0Id", 0, 1 << 30);
  s.mse_weight = static_cast<float>(required_number(o, "mseWeight", 0, 1e6));
  s.tau = static_cast<float>(required_number(o, "tau", 0, 1e6));
  s.compressor = required_string(o, "compressor");
  s.generator = required_string(o, "generator");
  s.query_reasoner = required_string(o, "queryReasoner");
  return s;
}

EncoderBatch to_encoder_batch(const HostBatch& b) {
  TokenBatch t = to_token_batch(b);
  return {t.ids, t.key_valid ? *t.key_valid : mx::ones(t.ids.shape(), mx::bool_), b.position_offset};
}

// A stage micro-batch as it arrives from JS: documents / query / candidates / prompt batches.
struct HostStageBatch {
  std::optional<HostBatch> docs, query, candidates;
  HostBatch prompt;
  int num_candidates = 0;
};

HostStageBatch to_host_stage_batch(Napi::Env env, Napi::Value v, const std::string& field, bool stage3) {
  Napi::Object o = object_arg(env, v, field);
  HostStageBatch b;
  b.prompt = to_host_batch(env, o.Get("prompt"), field + ".prompt");
  if (stage3) {
    b.query = to_host_batch(env, o.Get("query"), field + ".query");
    b.candidates = to_host_batch(env, o.Get("candidates"), field + ".candidates");
    b.num_candidates = int_option(o, "numCandidates", 0, 1, 1 << 20);
  } else {
    b.docs = to_host_batch(env, o.Get("docs"), field + ".docs");
  }
  return b;
}

LossFunction stage_loss(const Model& m, const HostStageBatch& hb, const ClaraSpec& spec, bool train, std::optional<mx::array> key) {
  if (hb.query) {
    Stage3Batch b{to_encoder_batch(*hb.query), to_encoder_batch(*hb.candidates), hb.num_candidates, to_token_batch(hb.prompt)};
    return [&m, b, spec, train, key](const Params& trainable) { return stage3_loss(m, trainable, b, spec, train, key); };
  }
  Stage12Batch b{to_encoder_batch(*hb.docs), to_token_batch(hb.prompt)};
  return [&m, b, spec, train, key](const Params& trainable) { return stage12_loss(m, trainable, b, spec, train, key); };
}

Napi::Object micro_to_js(Napi::Env env, const MicroBatchResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("tokens", r.tokens);
  o.Set("parts", values_to_js(env, r.parts));
  return o;
}

bool is_stage3(Napi::Object o) {
  std::string stage = string_option(o, "stage", "");
  if (stage != "stage12" && stage != "stage3") throw_invalid_argument(o.Env(), "stage", "Expected \"stage12\" or \"stage3\" for stage");
  return stage == "stage3";
}

}  // namespace

// claraInit({nMem, seed, firstId}): appends the memory and special tokens' rows (once); firstId is
// the first new token's id (the tokenizer's length).
Napi::Value ModelHandle::ClaraInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  int n_mem = required_int(o, "nMem", 1, 4096);
  uint64_t seed = seed_option(o, "seed");
  int first_id = int_option(o, "firstId", 0, 1, 1 << 30);
  return thread(env).submit(env, [s = state_, n_mem, seed, first_id] {
    add_memory_tokens(s->get(), n_mem, seed, first_id);
    return Completion([](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

// claraCalibrateMemoryInput({vectors: Tensor [N, n, H]}): sets the map from compressed vectors
// to the input embeddings' statistics (native/clara/memory_input.h).
Napi::Value ModelHandle::ClaraCalibrateMemoryInput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  HostTensor vectors = to_host_tensor(env, o.Get("vectors"), "vectors");
  return thread(env).submit(env, [s = state_, vectors] {
    Model& m = s->get();
    if (m.vocab_extension_start() <= 0) throw Error("E_INVALID_ARGUMENT", "[clara] the model has no CLaRa tokens (claraInit first)");
    calibrate_memory_input(m, to_array(vectors), m.vocab_extension_start());
    return Completion([](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

// claraCompress({docs, spec, adapter}) -> {vectors: Tensor [B, n, H], mse}
Napi::Value ModelHandle::ClaraCompress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  HostBatch docs = to_host_batch(env, o.Get("docs"), "docs");
  ClaraSpec spec = to_clara_spec(env, o.Get("spec"));
  std::string adapter = string_option(o, "adapter", spec.compressor);
  return thread(env).submit(env, [s = state_, docs, spec, adapter] {
    Model& m = s->get();
    Compressed c = compress(m, m.view(), to_encoder_batch(docs), spec.n_mem, m.active(adapter, false));
    auto vectors = std::make_shared<HostTensor>(to_host(mx::astype(c.vectors, mx::float32)));
    float mse = c.mse.item<float>();
    return Completion([vectors, mse](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("vectors", to_js_tensor(env, *vectors));
      out.Set("mse", mse);
      return out;
    });
  });
}

// claraTrainStep({stage: "stage12"|"stage3", microBatches, spec, seed}) -> StepResult
Napi::Value ModelHandle::ClaraTrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  bool stage3 = is_stage3(o);
  Napi::Value list = o.Get("microBatches");
  if (!list.IsArray() || list.As<Napi::Array>().Length() == 0) {
    throw_invalid_argument(env, "microBatches", "Expected a non-empty array of batches for microBatches");
  }
  std::vector<HostStageBatch> batches;
  for (uint32_t i = 0; i < list.As<Napi::Array>().Length(); ++i) {
    batches.push_back(to_host_stage_batch(env, list.As<Napi::Array>().Get(i), "microBatches[" + std::to_string(i) + "]", stage3));
  }
  ClaraSpec spec = to_clara_spec(env, o.Get("spec"));
  uint64_t seed = seed_option(o, "seed");
  // Under data parallelism each rank passes the global index of its first micro-batch, so
  // dropout draws the masks a single process would.
  int micro_offset = int_option(o, "microOffset", 0, 0, 1 << 30);
  return thread(env).submit(env, [s = state_, batches, spec, seed, micro_offset] {
    Model& m = s->get();
    Trainer& t = s->get_trainer();
    std::vector<LossFunction> losses;
    for (size_t i = 0; i < batches.size(); ++i) {
      losses.push_back(stage_loss(m, batches[i], spec, true, dropout_key(seed, t.step(), micro_offset + static_cast<int>(i))));
    }
    t.accumulate_all(losses);
    StepResult r = t.apply();
    return Completion([r](Napi::Env env) -> Napi::Value { return step_to_js(env, r); });
  });
}

// claraEvalLoss({stage, batch, spec}) -> {loss, tokens, parts}: no dropout, no gradient
Napi::Value ModelHandle::ClaraEvalLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  bool stage3 = is_stage3(o);
  HostStageBatch batch = to_host_stage_batch(env, o.Get("batch"), "batch", stage3);
  ClaraSpec spec = to_clara_spec(env, o.Get("spec"));
  return thread(env).submit(env, [s = state_, batch, spec] {
    Model& m = s->get();
    MicroBatchResult r = evaluate_terms(stage_loss(m, batch, spec, false, std::nullopt)(Params{}));
    return Completion([r](Napi::Env env) -> Napi::Value { return micro_to_js(env, r); });
  });
}

// claraGenerate({prompt, compressed: Tensor [B·k, n, H] | docs: batch, spec, options}) -> generation
Napi::Value ModelHandle::ClaraGenerate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  HostBatch prompt = to_host_batch(env, o.Get("prompt"), "prompt");
  std::optional<HostTensor> compressed;
  std::optional<HostBatch> docs;
  if (!o.Get("compressed").IsUndefined()) compressed = to_host_tensor(env, o.Get("compressed"), "compressed");
  else docs = to_host_batch(env, o.Get("docs"), "docs");
  ClaraSpec spec = to_clara_spec(env, o.Get("spec"));
  GenerateOptions g = to_generate_options(object_arg(env, o.Get("generation"), "generation"));
  return thread(env).submit(env, [s = state_, prompt, compressed, docs, spec, g] {
    Model& m = s->get();
    ParamView p = m.view();
    mx::array vectors = compressed ? to_array(*compressed)
                                   : compress(m, p, to_encoder_batch(*docs), spec.n_mem, m.active(spec.compressor, false)).vectors;
    TokenBatch b = to_token_batch(prompt);
    VocabExtension vocab = memory_vocab(p, m);
    mx::array embeddings = fill_memory_slots(embed_tokens(p, b.ids, &vocab), b.ids, memory_input(p, mx::astype(vectors, m.dtype())),
                                             spec.mem0_id, spec.n_mem, spec.k);
    auto r = std::make_shared<GenerateResult>(generate(m, embeddings, b.key_valid, spec.generator, g, &vocab));
    return Completion([r](Napi::Env env) -> Napi::Value { return generation_to_js(env, *r); });
  });
}

// claraRetrieve({query: batch, candidates: Tensor [B, N, n, H], spec}) -> {scores, indices, selected}
Napi::Value ModelHandle::ClaraRetrieve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  HostBatch query = to_host_batch(env, o.Get("query"), "query");
  HostTensor candidates = to_host_tensor(env, o.Get("candidates"), "candidates");
  ClaraSpec spec = to_clara_spec(env, o.Get("spec"));
  return thread(env).submit(env, [s = state_, query, candidates, spec] {
    Model& m = s->get();
    Retrieval r = retrieve(m, to_encoder_batch(query), mx::astype(to_array(candidates), m.dtype()), spec);
    auto scores = std::make_shared<HostTensor>(to_host(r.scores));
    auto indices = std::make_shared<HostTensor>(to_host(mx::astype(r.indices, mx::int32)));
    auto selected = std::make_shared<HostTensor>(to_host(mx::astype(r.selected, mx::float32)));
    return Completion([scores, indices, selected](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("scores", to_js_tensor(env, *scores));
      out.Set("indices", to_js_tensor(env, *indices));
      out.Set("selected", to_js_tensor(env, *selected));
      return out;
    });
  });
}

// indexAdd(name, vectors: Tensor [M, D]): appends to the named in-memory index (made on first use).
Napi::Value ModelHandle::IndexAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_invalid_argument(env, "name", "Expected a string for name");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  HostTensor vectors = to_host_tensor(env, info[1], "vectors");
  return thread(env).submit(env, [s = state_, name, vectors] {
    s->get();
    VectorIndex& index = s->indexes[name];
    index.add(to_array(vectors));
    int size = index.size();
    return Completion([size](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, size); });
  });
}

// indexSearch(name, queries: Tensor [B, D], k) -> {scores [B, k], indices [B, k], rows [B, k, D]}
Napi::Value ModelHandle::IndexSearch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_invalid_argument(env, "name", "Expected a string for name");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  HostTensor queries = to_host_tensor(env, info[1], "queries");
  int k = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 5;
  if (k < 1) throw_invalid_argument(env, "k", "Expected a positive integer for k");
  return thread(env).submit(env, [s = state_, name, queries, k] {
    s->get();
    auto it = s->indexes.find(name);
    if (it == s->indexes.end()) throw Error("E_INVALID_ARGUMENT", "[index] no index named '" + name + "' is loaded");
    VectorIndex::Hits hits = it->second.search(to_array(queries), k);
    auto scores = std::make_shared<HostTensor>(to_host(hits.scores));
    auto indices = std::make_shared<HostTensor>(to_host(hits.indices));
    auto rows = std::make_shared<HostTensor>(to_host(it->second.rows(hits.indices)));
    return Completion([scores, indices, rows](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("scores", to_js_tensor(env, *scores));
      out.Set("indices", to_js_tensor(env, *indices));
      out.Set("rows", to_js_tensor(env, *rows));
      return out;
    });
  });
}

Napi::Value ModelHandle::IndexDrop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  return thread(env).submit(env, [s = state_, name] {
    s->indexes.erase(name);
    return Completion([](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

// meanOverRanks(values: number[]) -> number[]: the mean of each value over the trainer's ranks
// (itself when training runs in one process): evaluation metrics reduced across ranks.
Napi::Value ModelHandle::MeanOverRanks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw_invalid_argument(env, "values", "Expected an array of numbers for values");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<float> values;
  for (uint32_t i = 0; i < a.Length(); ++i) values.push_back(a.Get(i).As<Napi::Number>().FloatValue());
  return thread(env).submit(env, [s = state_, values] {
    std::vector<float> out = values;
    if (s->trainer && s->trainer->data_parallel() && !values.empty()) {
      mx::array v(values.data(), {static_cast<int>(values.size())}, mx::float32);
      mx::array mean = average_over_ranks({v}, *s->trainer->data_parallel())[0];
      mean.eval();
      out.assign(mean.data<float>(), mean.data<float>() + values.size());
    }
    return Completion([out](Napi::Env env) -> Napi::Value {
      Napi::Array r = Napi::Array::New(env, out.size());
      for (size_t i = 0; i < out.size(); ++i) r.Set(static_cast<uint32_t>(i), out[i]);
      return r;
    });
  });
}

}  // namespace clara::binding
