// NativeModel's training methods: the trainer, one step over micro-batches of any loss (the
// plain LM loss or a CLaRa stage loss), batched evaluation losses, gradients for checks, the
// optimizer state, and means over data-parallel ranks. Conversions only; the step lives in
// native/train/trainer.h and the losses in native/train/lm_loss.h and native/clara/stages.h.
#include "clara/generator.h"
#include "clara/stages.h"
#include "convert.h"
#include "errors.h"
#include "model_convert.h"
#include "model_handle.h"
#include "model_state.h"
#include "train/data_parallel.h"
#include "train/lm_loss.h"
#include "train/trainer.h"

namespace clara::binding {

namespace {

// Which loss a step or an evaluation computes: "lm" (next-token CE through one adapter) or a
// CLaRa stage loss ("stage12", "stage3") with its spec.
struct LossKind {
  std::string name;
  std::string adapter;  // lm
  ClaraSpec spec;       // stage12, stage3
  bool lm() const { return name == "lm"; }
  bool stage3() const { return name == "stage3"; }
};

LossKind to_loss_kind(Napi::Env env, Napi::Object o) {
  LossKind k;
  k.name = required_string(o, "loss");
  if (k.name != "lm" && k.name != "stage12" && k.name != "stage3") {
    throw_invalid_argument(env, "loss", "Expected \"lm\", \"stage12\" or \"stage3\" for loss, got \"" + k.name + "\"");
  }
  if (k.lm()) {
    k.adapter = string_option(o, "adapter", "");
  } else {
    if (!o.Get("spec").IsObject()) throw_invalid_argument(env, "spec", "Missing spec: a \"" + k.name + "\" loss needs the CLaRa spec");
    k.spec = to_clara_spec(env, o.Get("spec"));
  }
  return k;
}

// One micro-batch as it arrives from JS. lm: the token batch itself (`prompt` here). Stages:
// {docs, prompt} or {query, candidates, numCandidates, prompt}.
struct HostMicroBatch {
  HostBatch prompt;
  std::optional<HostBatch> docs, query, candidates;
  int num_candidates = 0;
};

HostMicroBatch to_host_micro_batch(Napi::Env env, Napi::Value v, const std::string& field, const LossKind& kind) {
  HostMicroBatch b;
  if (kind.lm()) {
    b.prompt = to_host_batch(env, v, field);
    return b;
  }
  Napi::Object o = object_arg(env, v, field);
  b.prompt = to_host_batch(env, o.Get("prompt"), field + ".prompt");
  if (kind.stage3()) {
    b.query = to_host_batch(env, o.Get("query"), field + ".query");
    b.candidates = to_host_batch(env, o.Get("candidates"), field + ".candidates");
    b.num_candidates = int_option(o, "numCandidates", 0, 1, 1 << 20);
  } else {
    b.docs = to_host_batch(env, o.Get("docs"), field + ".docs");
  }
  return b;
}

std::vector<HostMicroBatch> to_host_micro_batches(Napi::Env env, Napi::Value list, const std::string& field, const LossKind& kind) {
  if (!list.IsArray() || list.As<Napi::Array>().Length() == 0) {
    throw_invalid_argument(env, field, "Expected a non-empty array of batches for " + field);
  }
  std::vector<HostMicroBatch> batches;
  for (uint32_t i = 0; i < list.As<Napi::Array>().Length(); ++i) {
    batches.push_back(to_host_micro_batch(env, list.As<Napi::Array>().Get(i), field + "[" + std::to_string(i) + "]", kind));
  }
  return batches;
}

// The loss of one micro-batch as a function of the trainable parameters. Everything read from
// the batch's values (supervised positions, memory-slot sources) is read here, on the host, so
// the function is one graph. MLX thread.
LossFunction loss_function(const Model& m, const HostMicroBatch& hb, const LossKind& kind, bool train, std::optional<mx::array> key) {
  TokenBatch prompt = to_token_batch(hb.prompt);
  if (kind.lm()) {
    return [&m, prompt, adapter = kind.adapter, train, key](const Params& trainable) {
      return lm_loss(m, trainable, prompt, adapter, train, key);
    };
  }
  const ClaraSpec& spec = kind.spec;
  mx::array slots = memory_slot_sources(hb.prompt.ids, spec.mem0_id, spec.n_mem, spec.k);
  if (kind.stage3()) {
    Stage3Batch b{to_encoder_batch(*hb.query), to_encoder_batch(*hb.candidates), hb.num_candidates, prompt, slots};
    return [&m, b, spec, train, key](const Params& trainable) { return stage3_loss(m, trainable, b, spec, train, key); };
  }
  Stage12Batch b{to_encoder_batch(*hb.docs), prompt, slots};
  return [&m, b, spec, train, key](const Params& trainable) { return stage12_loss(m, trainable, b, spec, train, key); };
}

Napi::Object micro_to_js(Napi::Env env, const MicroBatchResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("tokens", r.tokens);
  o.Set("parts", values_to_js(env, r.parts));
  return o;
}

}  // namespace

// createTrainer({trainable: string[], adamw, schedule, maxGradNorm}); trainable entries are
// exact names or prefixes ending in '.'
Napi::Value ModelHandle::CreateTrainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  std::vector<std::string> patterns = string_list_option(o, "trainable");
  TrainerConfig config = to_trainer_config(o);
  std::string backend = string_option(o, "distributed", "");
  return thread(env).submit(env, [s = state_, patterns, config, backend] {
    Model& m = s->get();
    std::vector<std::string> names = m.parameters_matching(patterns);
    s->trainer = std::make_unique<Trainer>(m, names, config);
    if (!backend.empty()) s->trainer->enable_data_parallel(join_data_parallel(backend));
    int rank = s->trainer->data_parallel() ? s->trainer->data_parallel()->rank() : 0;
    int world = s->trainer->data_parallel() ? s->trainer->data_parallel()->size() : 1;
    auto count = std::make_shared<size_t>(0);
    for (const auto& n : names) *count += m.extra().at(n).size();
    size_t tensors = names.size();
    return Completion([count, tensors, rank, world](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("parameters", static_cast<double>(*count));
      out.Set("tensors", static_cast<double>(tensors));
      out.Set("rank", rank);
      out.Set("worldSize", world);
      return out;
    });
  });
}

// trainStep({loss: "lm"|"stage12"|"stage3", microBatches, adapter (lm) | spec (stages), seed,
// microOffset}) -> {loss, tokens, gradNorm, lr, step, parts, allreduceSeconds, memory}: one
// optimizer update over the micro-batches, in one crossing.
Napi::Value ModelHandle::TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  LossKind kind = to_loss_kind(env, o);
  std::vector<HostMicroBatch> batches = to_host_micro_batches(env, o.Get("microBatches"), "microBatches", kind);
  uint64_t seed = seed_option(o, "seed");
  // Under data parallelism each rank passes the global index of its first micro-batch, so
  // dropout draws the masks a single process would.
  int micro_offset = int_option(o, "microOffset", 0, 0, 1 << 30);
  return thread(env).submit(env, [s = state_, batches, kind, seed, micro_offset] {
    Model& m = s->get();
    Trainer& t = s->get_trainer();
    std::vector<LossFunction> losses;
    for (size_t i = 0; i < batches.size(); ++i) {
      losses.push_back(loss_function(m, batches[i], kind, true, dropout_key(seed, t.step(), micro_offset + static_cast<int>(i))));
    }
    t.accumulate_all(losses);
    StepResult r = t.apply();
    return Completion([r](Napi::Env env) -> Napi::Value { return step_to_js(env, r); });
  });
}

// evalLosses({loss, batches, adapter | spec}) -> [{loss, tokens, parts}] per batch: no dropout,
// no gradient; held-out evaluation crosses once for all its examples.
Napi::Value ModelHandle::EvalLosses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  LossKind kind = to_loss_kind(env, o);
  std::vector<HostMicroBatch> batches = to_host_micro_batches(env, o.Get("batches"), "batches", kind);
  return thread(env).submit(env, [s = state_, batches, kind] {
    Model& m = s->get();
    auto results = std::make_shared<std::vector<MicroBatchResult>>();
    for (const auto& b : batches) results->push_back(evaluate_terms(loss_function(m, b, kind, false, std::nullopt)(Params{})));
    return Completion([results](Napi::Env env) -> Napi::Value {
      Napi::Array out = Napi::Array::New(env, results->size());
      for (size_t i = 0; i < results->size(); ++i) out.Set(static_cast<uint32_t>(i), micro_to_js(env, (*results)[i]));
      return out;
    });
  });
}

// lmLossAndGrad({batch, adapter, train, seed}) -> {loss, tokens, grads: [name, Tensor][]}
Napi::Value ModelHandle::LmLossAndGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "options");
  HostBatch batch = to_host_batch(env, o.Get("batch"), "batch");
  std::string adapter = string_option(o, "adapter", "");
  bool train = bool_option(o, "train", false);
  uint64_t seed = seed_option(o, "seed");
  return thread(env).submit(env, [s = state_, batch, adapter, train, seed] {
    Model& m = s->get();
    if (!s->trainer) throw Error("E_NO_TRAINER", "[train] call createTrainer() first");
    TokenBatch b = to_token_batch(batch);
    auto [loss, grads] = s->trainer->loss_and_grad(
        [&](const Params& trainable) { return lm_loss(m, trainable, b, adapter, train, dropout_key(seed, 0, 0)); });
    auto named = std::make_shared<NamedTensors>();
    for (size_t i = 0; i < grads.size(); ++i) named->emplace_back(s->trainer->trainable()[i], to_host(grads[i]));
    float l = loss.loss.item<float>(), tokens = loss.tokens.item<float>();
    return Completion([named, l, tokens](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("loss", l);
      out.Set("tokens", tokens);
      out.Set("grads", named_tensors_to_js(env, *named));
      return out;
    });
  });
}

// optimizerState() -> {step, m: [name, Tensor][], v: [name, Tensor][]}
Napi::Value ModelHandle::OptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return thread(env).submit(env, [s = state_] {
    if (!s->trainer) throw Error("E_NO_TRAINER", "[train] call createTrainer() first");
    Trainer& t = *s->trainer;
    auto m = std::make_shared<NamedTensors>(), v = std::make_shared<NamedTensors>();
    for (size_t i = 0; i < t.trainable().size(); ++i) {
      m->emplace_back(t.trainable()[i], to_host(t.optimizer_state().m[i]));
      v->emplace_back(t.trainable()[i], to_host(t.optimizer_state().v[i]));
    }
    int step = t.step();
    return Completion([m, v, step](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("step", step);
      out.Set("m", named_tensors_to_js(env, *m));
      out.Set("v", named_tensors_to_js(env, *v));
      return out;
    });
  });
}

Napi::Value ModelHandle::SetOptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(env, info[0], "state");
  int step = int_option(o, "step", 0, 0, 1 << 30);
  NamedTensors m = to_named_tensors(env, o.Get("m"), "state.m");
  NamedTensors v = to_named_tensors(env, o.Get("v"), "state.v");
  return thread(env).submit(env, [s = state_, step, m, v] {
    if (!s->trainer) throw Error("E_NO_TRAINER", "[train] call createTrainer() first");
    Trainer& t = *s->trainer;
    const auto& names = t.trainable();
    if (m.size() != names.size() || v.size() != names.size()) {
      throw Error("E_OPTIMIZER_STATE", "[resume] the optimizer state holds " + std::to_string(m.size()) +
                                           " tensors but the trainer has " + std::to_string(names.size()));
    }
    AdamWState state;
    state.step = step;
    for (size_t i = 0; i < names.size(); ++i) {
      if (m[i].first != names[i] || v[i].first != names[i]) {
        throw Error("E_OPTIMIZER_STATE", "[resume] optimizer state entry '" + m[i].first + "' does not match '" + names[i] + "'");
      }
      state.m.push_back(to_array(m[i].second));
      state.v.push_back(to_array(v[i].second));
    }
    t.optimizer_state() = std::move(state);
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
