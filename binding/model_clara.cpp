// NativeModel's CLaRa methods: memory tokens, compression, retrieval and generation from
// compressed documents (the stage losses train through model_train.cpp). Conversions only;
// the method lives in native/clara/.
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

namespace clara::binding {

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
    mx::array slots = memory_slot_sources(prompt.ids, spec.mem0_id, spec.n_mem, spec.k);
    VocabExtension vocab = memory_vocab(p, m);
    mx::array embeddings = fill_memory_slots(embed_tokens(p, b.ids, &vocab), slots, memory_input(p, mx::astype(vectors, m.dtype())),
                                             spec.n_mem, spec.k);
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

}  // namespace clara::binding
