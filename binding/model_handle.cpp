#include "model_handle.h"

#include "addon_state.h"
#include "common/error.h"
#include "convert.h"
#include "model_convert.h"
#include "model_state.h"
#include "errors.h"
#include "model/generate.h"
#include "model/llama.h"
#include "model/model.h"
#include "train/lm_loss.h"
#include "train/trainer.h"

namespace clara::binding {

Napi::Function ModelHandle::Define(Napi::Env env) {
  Napi::Function cls = DefineClass(env, "NativeModel",
                                   {
                                       InstanceMethod("logits", &ModelHandle::Logits),
                                       InstanceMethod("hidden", &ModelHandle::Hidden),
                                       InstanceMethod("generate", &ModelHandle::Generate),
                                       InstanceMethod("addAdapter", &ModelHandle::AddAdapter),
                                       InstanceMethod("copyAdapter", &ModelHandle::CopyAdapter),
                                       InstanceMethod("removeAdapter", &ModelHandle::RemoveAdapter),
                                       InstanceMethod("adapters", &ModelHandle::Adapters),
                                       InstanceMethod("getParameters", &ModelHandle::GetParameters),
                                       InstanceMethod("setParameters", &ModelHandle::SetParameters),
                                       InstanceMethod("createTrainer", &ModelHandle::CreateTrainer),
                                       InstanceMethod("trainStep", &ModelHandle::TrainStep),
                                       InstanceMethod("evalLosses", &ModelHandle::EvalLosses),
                                       InstanceMethod("lmLossAndGrad", &ModelHandle::LmLossAndGrad),
                                       InstanceMethod("optimizerState", &ModelHandle::OptimizerState),
                                       InstanceMethod("setOptimizerState", &ModelHandle::SetOptimizerState),
                                       InstanceMethod("dispose", &ModelHandle::Dispose),
                                       InstanceMethod("claraInit", &ModelHandle::ClaraInit),
                                       InstanceMethod("claraCalibrateMemoryInput", &ModelHandle::ClaraCalibrateMemoryInput),
                                       InstanceMethod("claraCompress", &ModelHandle::ClaraCompress),
                                       InstanceMethod("claraGenerate", &ModelHandle::ClaraGenerate),
                                       InstanceMethod("claraRetrieve", &ModelHandle::ClaraRetrieve),
                                       InstanceMethod("indexAdd", &ModelHandle::IndexAdd),
                                       InstanceMethod("indexSearch", &ModelHandle::IndexSearch),
                                       InstanceMethod("indexDrop", &ModelHandle::IndexDrop),
                                       InstanceMethod("meanOverRanks", &ModelHandle::MeanOverRanks),
                                   });
  addon_state(env).model_class = Napi::Persistent(cls);
  return cls;
}

ModelHandle::ModelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelHandle>(info) {
  if (!info[0].IsExternal()) throw_invalid_argument(info.Env(), "NativeModel", "NativeModel is made by loadModel(), not new");
  state_ = *info[0].As<Napi::External<std::shared_ptr<ModelState>>>().Data();
}

ModelHandle::~ModelHandle() {
  // The weights are MLX arrays: release them on the MLX thread, after any queued work.
  if (state_ && addon_state(Env()).mlx_thread) {
    thread(Env()).post([s = std::move(state_)]() mutable { s.reset(); });
  }
}

std::shared_ptr<ModelState> ModelHandle::state(Napi::Env env) const {
  return state_;
}

Napi::Value ModelHandle::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object spec = object_arg(env, info[0], "spec");
  ModelConfig config = to_model_config(object_arg(env, spec.Get("config"), "config"));
  WeightSource source;
  source.format = string_option(spec, "format", "");
  source.files = string_list_option(spec, "files");
  source.gguf_rope_permuted = bool_option(spec, "ggufRopePermuted", false);
  source.source_group_size = int_option(spec, "sourceGroupSize", 0, 0, 1 << 16);
  // lib/model/quantization.ts resolves the user's option; this only carries it.
  Napi::Object q = object_arg(env, spec.Get("quantization"), "quantization");
  source.quantization = {string_option(q, "mode", ""), int_option(q, "bits", 0, 0, 8), int_option(q, "groupSize", 0, 0, 1 << 16)};
  std::string dtype = string_option(spec, "dtype", "float32");
  return thread(env).submit(env, [config, source, dtype] {
    auto state = std::make_shared<ModelState>();
    state->model.emplace(Model::load(source, config, compute_dtype(dtype)));
    return Completion([state](Napi::Env env) -> Napi::Value {
      auto* holder = new std::shared_ptr<ModelState>(state);
      auto ext = Napi::External<std::shared_ptr<ModelState>>::New(env, holder,
                                                                  [](Napi::Env, std::shared_ptr<ModelState>* p) { delete p; });
      return addon_state(env).model_class.New({ext});
    });
  });
}

// logits(batch, {adapter, lastOnly}) -> Promise<Tensor [B, L|1, V] float32>
Napi::Value ModelHandle::Logits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HostBatch batch = to_host_batch(env, info[0], "batch");
  Napi::Object o = object_arg(env, info[1], "options");
  std::string adapter = string_option(o, "adapter", "");
  bool last_only = bool_option(o, "lastOnly", false);
  return thread(env).submit(env, [s = state(env), batch, adapter, last_only] {
    Model& m = s->get();
    TokenBatch b = to_token_batch(batch);
    ParamView p = m.view();
    mx::array h = decoder_hidden(p, m.config(), embed_tokens(p, b.ids), b.key_valid, m.active(adapter, false));
    if (last_only) h = mx::slice(h, {0, h.shape(1) - 1, 0}, h.shape());
    auto out = std::make_shared<HostTensor>(to_host(mx::astype(lm_logits(p, m.config(), h), mx::float32)));
    return Completion([out](Napi::Env env) -> Napi::Value { return to_js_tensor(env, *out); });
  });
}

// hidden(batch, {adapter}) -> Promise<Tensor [B, L, H] float32>: final-norm hidden states
Napi::Value ModelHandle::Hidden(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HostBatch batch = to_host_batch(env, info[0], "batch");
  std::string adapter = string_option(object_arg(env, info[1], "options"), "adapter", "");
  return thread(env).submit(env, [s = state(env), batch, adapter] {
    Model& m = s->get();
    TokenBatch b = to_token_batch(batch);
    ParamView p = m.view();
    mx::array h = decoder_hidden(p, m.config(), embed_tokens(p, b.ids), b.key_valid, m.active(adapter, false));
    auto out = std::make_shared<HostTensor>(to_host(mx::astype(h, mx::float32)));
    return Completion([out](Napi::Env env) -> Napi::Value { return to_js_tensor(env, *out); });
  });
}

// generate(batch, {adapter, maxTokens, temperature, topP, stopTokens, seed})
Napi::Value ModelHandle::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HostBatch batch = to_host_batch(env, info[0], "batch");
  Napi::Object o = object_arg(env, info[1], "options");
  std::string adapter = string_option(o, "adapter", "");
  GenerateOptions g = to_generate_options(o);
  return thread(env).submit(env, [s = state(env), batch, adapter, g] {
    Model& m = s->get();
    TokenBatch b = to_token_batch(batch);
    mx::array embeddings = embed_tokens(m.view(), b.ids);
    auto r = std::make_shared<GenerateResult>(generate(m, embeddings, b.key_valid, adapter, g));
    return Completion([r](Napi::Env env) -> Napi::Value { return generation_to_js(env, *r); });
  });
}

Napi::Value ModelHandle::AddAdapter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_invalid_argument(env, "name", "Expected a string for name");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  Napi::Object o = object_arg(env, info[1], "options");
  LoraConfig lora = to_lora_config(o);
  uint64_t seed = seed_option(o, "seed");
  return thread(env).submit(env, [s = state(env), name, lora, seed] {
    s->get().add_adapter(name, lora, seed);
    return Completion([](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value ModelHandle::CopyAdapter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString()) throw_invalid_argument(env, "from", "Expected two adapter names");
  std::string from = info[0].As<Napi::String>().Utf8Value(), to = info[1].As<Napi::String>().Utf8Value();
  return thread(env).submit(env, [s = state(env), from, to] {
    s->get().copy_adapter(from, to);
    return Completion([](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value ModelHandle::RemoveAdapter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_invalid_argument(env, "name", "Expected a string for name");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return thread(env).submit(env, [s = state(env), name] {
    s->get().remove_adapter(name);
    return Completion([](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value ModelHandle::Adapters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return thread(env).submit(env, [s = state(env)] {
    std::vector<std::pair<std::string, LoraConfig>> list;
    Model& m = s->get();
    for (const auto& n : m.adapter_names()) list.emplace_back(n, m.adapter_config(n));
    return Completion([list](Napi::Env env) -> Napi::Value {
      Napi::Array out = Napi::Array::New(env, list.size());
      for (size_t i = 0; i < list.size(); ++i) out.Set(static_cast<uint32_t>(i), lora_to_js(env, list[i].first, list[i].second));
      return out;
    });
  });
}

// getParameters(prefix) -> Promise<[name, Tensor][]> of trainable-kind parameters
Napi::Value ModelHandle::GetParameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string prefix = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  return thread(env).submit(env, [s = state(env), prefix] {
    Model& m = s->get();
    auto entries = std::make_shared<NamedTensors>();
    for (const auto& n : m.parameter_names(prefix)) entries->emplace_back(n, to_host(m.extra().at(n)));
    return Completion([entries](Napi::Env env) -> Napi::Value { return named_tensors_to_js(env, *entries); });
  });
}

// setParameters(entries, {adapters: [{name, rank, alpha, dropout}]}): replaces or adds
// trainable-kind parameters; shapes of existing entries must match.
Napi::Value ModelHandle::SetParameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NamedTensors entries = to_named_tensors(env, info[0], "entries");
  Napi::Object o = object_arg(env, info[1], "options");
  std::vector<std::pair<std::string, LoraConfig>> declared;
  Napi::Value list = o.Get("adapters");
  if (list.IsArray()) {
    Napi::Array a = list.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Object e = object_arg(env, a.Get(i), "adapters[" + std::to_string(i) + "]");
      declared.emplace_back(string_option(e, "name", ""), to_lora_config(e));
    }
  }
  return thread(env).submit(env, [s = state(env), entries, declared] {
    Model& m = s->get();
    for (const auto& [name, t] : entries) {
      mx::array a = to_array(t);
      auto it = m.extra().find(name);
      if (it != m.extra().end() && it->second.shape() != a.shape()) {
        throw Error("E_PARAMETER_SHAPE", "[setParameters] '" + name + "' has a different shape than the model's", {"", name, 0});
      }
      m.extra().insert_or_assign(name, mx::astype(a, m.dtype()));
    }
    for (const auto& [name, lora] : declared) m.declare_adapter(name, lora);
    if (s->trainer) s->trainer.reset();  // its optimizer state no longer matches
    return Completion([](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value ModelHandle::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return thread(env).submit(env, [s = state(env)] {
    s->trainer.reset();
    s->model.reset();
    return Completion([](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

}  // namespace clara::binding
