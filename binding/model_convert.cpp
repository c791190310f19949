#include "model_convert.h"

#include "addon_state.h"
#include "common/error.h"
#include "convert.h"
#include "errors.h"
#include "model/generate.h"

namespace clara::binding {

ModelConfig to_model_config(Napi::Object o) {
  ModelConfig c;
  c.model_type = string_option(o, "model_type", "llama");
  c.hidden_size = int_option(o, "hidden_size", 0, 1, 1 << 20);
  c.intermediate_size = int_option(o, "intermediate_size", 0, 1, 1 << 22);
  c.num_hidden_layers = int_option(o, "num_hidden_layers", 0, 1, 4096);
  c.num_attention_heads = int_option(o, "num_attention_heads", 0, 1, 4096);
  c.num_key_value_heads = int_option(o, "num_key_value_heads", c.num_attention_heads, 1, 4096);
  c.head_dim = int_option(o, "head_dim", 0, 0, 4096);
  c.vocab_size = int_option(o, "vocab_size", 0, 1, 1 << 24);
  c.rms_norm_eps = static_cast<float>(number_option(o, "rms_norm_eps", 1e-5, 0, 1));
  c.rope_theta = static_cast<float>(number_option(o, "rope_theta", 10000, 0, 1e12));
  c.tie_word_embeddings = bool_option(o, "tie_word_embeddings", false);
  c.qkv_bias = bool_option(o, "qkv_bias", false);
  c.o_bias = bool_option(o, "o_bias", false);
  c.mlp_bias = bool_option(o, "mlp_bias", false);
  c.qk_norm = bool_option(o, "qk_norm", false);
  Napi::Value scaling = o.Get("rope_scaling");
  if (scaling.IsObject()) {
    Napi::Object s = scaling.As<Napi::Object>();
    c.rope_scaling.type = string_option(s, "type", "default");
    c.rope_scaling.factor = static_cast<float>(number_option(s, "factor", 1, 0, 1e6));
    c.rope_scaling.low_freq_factor = static_cast<float>(number_option(s, "low_freq_factor", 1, 0, 1e6));
    c.rope_scaling.high_freq_factor = static_cast<float>(number_option(s, "high_freq_factor", 4, 0, 1e6));
    c.rope_scaling.original_max_position_embeddings = int_option(s, "original_max_position_embeddings", 8192, 1, 1 << 24);
  }
  return c;
}

LoraConfig to_lora_config(Napi::Object o) {
  LoraConfig l;
  l.rank = required_int(o, "rank", 1, 4096);
  l.alpha = static_cast<float>(required_number(o, "alpha", 0, 1e6));
  l.dropout = static_cast<float>(required_number(o, "dropout", 0, 0.999));
  return l;
}

Napi::Object lora_to_js(Napi::Env env, const std::string& name, const LoraConfig& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name);
  o.Set("rank", l.rank);
  o.Set("alpha", l.alpha);
  o.Set("dropout", l.dropout);
  return o;
}

mx::Dtype compute_dtype(const std::string& name) {
  if (name == "float32") return mx::float32;
  if (name == "bfloat16") return mx::bfloat16;
  if (name == "float16") return mx::float16;
  invalid_argument("dtype", "compute dtype must be float32, bfloat16 or float16, got '" + name + "'");
}

HostBatch to_host_batch(Napi::Env env, Napi::Value v, const std::string& field) {
  Napi::Object o = object_arg(env, v, field);
  HostBatch b;
  b.ids = to_host_tensor(env, o.Get("ids"), field + ".ids");
  if (b.ids.dtype != mx::int32 || b.ids.shape.size() != 2) {
    throw_invalid_argument(env, field + ".ids", "Expected an int32 tensor of shape [B, L] for " + field + ".ids");
  }
  if (!o.Get("keyValid").IsUndefined()) b.key_valid = to_host_tensor(env, o.Get("keyValid"), field + ".keyValid");
  if (!o.Get("lossMask").IsUndefined()) b.loss_mask = to_host_tensor(env, o.Get("lossMask"), field + ".lossMask");
  b.position_offset = int_option(o, "positionOffset", 0, 0, 1 << 24);
  for (auto* t : {b.key_valid ? &*b.key_valid : nullptr, b.loss_mask ? &*b.loss_mask : nullptr}) {
    if (t && t->shape != b.ids.shape) throw_invalid_argument(env, field, "masks must have the shape of " + field + ".ids");
  }
  return b;
}

TokenBatch to_token_batch(const HostBatch& b) {
  return make_token_batch(b.ids, b.key_valid ? &*b.key_valid : nullptr, b.loss_mask ? &*b.loss_mask : nullptr);
}

EncoderBatch to_encoder_batch(const HostBatch& b) {
  mx::array ids = to_array(b.ids);
  mx::array valid = b.key_valid ? mx::astype(to_array(*b.key_valid), mx::bool_) : mx::ones(ids.shape(), mx::bool_);
  return {ids, valid, b.position_offset};
}

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

NamedTensors to_named_tensors(Napi::Env env, Napi::Value v, const std::string& field) {
  if (!v.IsArray()) throw_invalid_argument(env, field, "Expected an array of [name, tensor] pairs for " + field);
  Napi::Array a = v.As<Napi::Array>();
  NamedTensors out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    std::string where = field + "[" + std::to_string(i) + "]";
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 2 || !e.As<Napi::Array>().Get(0u).IsString()) {
      throw_invalid_argument(env, where, "Expected a [name, tensor] pair for " + where);
    }
    Napi::Array pair = e.As<Napi::Array>();
    std::string name = pair.Get(0u).As<Napi::String>().Utf8Value();
    out.emplace_back(name, to_host_tensor(env, pair.Get(1u), where + "[1]"));
  }
  return out;
}

Napi::Array named_tensors_to_js(Napi::Env env, const NamedTensors& entries) {
  Napi::Array out = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, entries[i].first);
    pair.Set(1u, to_js_tensor(env, entries[i].second));
    out.Set(static_cast<uint32_t>(i), pair);
  }
  return out;
}

TrainerConfig to_trainer_config(Napi::Object o) {
  TrainerConfig t;
  Napi::Object adamw = object_arg(o.Env(), o.Get("adamw"), "adamw");
  t.adamw.beta1 = static_cast<float>(required_number(adamw, "beta1", 0, 1));
  t.adamw.beta2 = static_cast<float>(required_number(adamw, "beta2", 0, 1));
  t.adamw.eps = static_cast<float>(required_number(adamw, "eps", 0, 1));
  t.adamw.weight_decay = static_cast<float>(required_number(adamw, "weightDecay", 0, 10));
  Napi::Object s = object_arg(o.Env(), o.Get("schedule"), "schedule");
  t.schedule.kind = required_string(s, "kind");
  t.schedule.lr = static_cast<float>(required_number(s, "lr", 0, 1e9));
  t.schedule.min_lr_ratio = static_cast<float>(required_number(s, "minLrRatio", 0, 1));
  t.schedule.warmup_steps = required_int(s, "warmupSteps", 0, 1 << 30);
  t.schedule.total_steps = required_int(s, "totalSteps", 1, 1 << 30);
  t.max_grad_norm = static_cast<float>(required_number(o, "maxGradNorm", 0, 1e9));
  t.lanes = required_int(o, "lanes", 1, 2);
  t.checkpoint_layers = required_bool(o, "gradCheckpoint");
  return t;
}

Napi::Object step_to_js(Napi::Env env, const StepResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("tokens", r.tokens);
  o.Set("gradNorm", r.grad_norm);
  o.Set("lr", r.lr);
  o.Set("step", r.step);
  o.Set("parts", values_to_js(env, r.parts));
  o.Set("allreduceSeconds", r.allreduce_seconds);
  Napi::Object memory = Napi::Object::New(env);
  memory.Set("active", static_cast<double>(r.active_memory));
  memory.Set("peak", static_cast<double>(r.peak_memory));
  o.Set("memory", memory);
  return o;
}

MlxThread& thread(Napi::Env env) {
  return *addon_state(env).mlx_thread;
}

Napi::Object generation_to_js(Napi::Env env, const GenerateResult& r) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Array tokens = Napi::Array::New(env, r.tokens.size());
  Napi::Array stopped = Napi::Array::New(env, r.stopped.size());
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    Napi::Array row = Napi::Array::New(env, r.tokens[i].size());
    for (size_t j = 0; j < r.tokens[i].size(); ++j) row.Set(static_cast<uint32_t>(j), r.tokens[i][j]);
    tokens.Set(static_cast<uint32_t>(i), row);
    stopped.Set(static_cast<uint32_t>(i), Napi::Boolean::New(env, r.stopped[i]));
  }
  out.Set("tokens", tokens);
  out.Set("stopped", stopped);
  out.Set("promptTokens", r.prompt_tokens);
  out.Set("prefillSeconds", r.prefill_seconds);
  out.Set("decodeSeconds", r.decode_seconds);
  return out;
}

GenerateOptions to_generate_options(Napi::Object o) {
  GenerateOptions g;
  g.max_tokens = required_int(o, "maxTokens", 0, 1 << 20);
  g.temperature = static_cast<float>(required_number(o, "temperature", 0, 100));
  g.top_p = static_cast<float>(required_number(o, "topP", 0, 1));
  g.stop_tokens = int_list_option(o, "stopTokens");
  g.seed = static_cast<uint64_t>(required_number(o, "seed", 0, 9007199254740991.0));
  return g;
}

Napi::Object values_to_js(Napi::Env env, const NamedValues& values) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, v] : values) o.Set(name, v);
  return o;
}

uint64_t seed_option(Napi::Object o, const char* name) {
  return static_cast<uint64_t>(number_option(o, name, 0, 0, 9007199254740991.0));
}

}  // namespace clara::binding
