#include "model/weights.h"

#include <cstring>
#include <regex>
#include <sstream>

#include "common/error.h"

namespace clara {

namespace {

const char* const kProjections[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tensors some checkpoints carry that the forward pass derives itself.
bool ignorable(const std::string& name) {
  return ends_with(name, "rotary_emb.inv_freq");
}

std::string layer(int i) {
  return "model.layers." + std::to_string(i) + ".";
}

// GGUF (llama.cpp) tensor names -> HF names. Returns "" for tensors we do not use.
std::string from_gguf_name(const std::string& name) {
  static const std::regex block(R"(^blk\.(\d+)\.(\w+)\.(weight|bias)$)");
  static const std::unordered_map<std::string, std::string> per_layer = {
      {"attn_q", "self_attn.q_proj"},      {"attn_k", "self_attn.k_proj"},   {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},       {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
      {"attn_q_norm", "self_attn.q_norm"}, {"attn_k_norm", "self_attn.k_norm"}};
  if (name == "token_embd.weight") return "model.embed_tokens.weight";
  if (name == "output_norm.weight") return "model.norm.weight";
  if (name == "output.weight") return "lm_head.weight";
  if (name == "rope_freqs.weight") return kRopeFreqFactors;
  std::smatch m;
  if (std::regex_match(name, m, block)) {
    auto it = per_layer.find(m[2]);
    if (it != per_layer.end()) return "model.layers." + m[1].str() + "." + it->second + "." + m[3].str();
  }
  return "";
}

// llama.cpp's convert permute(w, n_head): rows [n_head, 2, d/2] -> [n_head, d/2, 2]. Undo it.
mx::array unpermute_rope_rows(const mx::array& w, int n_head) {
  int out = w.shape(0);
  int in = w.ndim() == 2 ? w.shape(1) : 1;
  int half = out / n_head / 2;
  mx::array r = mx::reshape(w, {n_head, half, 2, in});
  r = mx::swapaxes(r, 1, 2);
  return w.ndim() == 2 ? mx::reshape(r, {out, in}) : mx::reshape(r, {out});
}

Params load_gguf_weights(const WeightSource& source, const ModelConfig& c) {
  const std::string& file = source.files.at(0);
  auto [raw, metadata] = mx::load_gguf(file);
  (void)metadata;  // lib/ reads the metadata itself; here only tensors matter
  Params out;
  for (auto& [name, value] : raw) {
    // Quantized tensors come as X.weight (packed uint32) + X.scales + X.biases, groups of 32.
    if (name.size() > 7 && (name.compare(name.size() - 7, 7, ".scales") == 0 || name.compare(name.size() - 7, 7, ".biases") == 0)) {
      continue;
    }
    std::string ours = from_gguf_name(name);
    if (ours.empty()) {
      throw Error("E_MODEL_TENSOR", "[load] " + file + " holds tensor '" + name + "' that this loader does not know",
                  {file, name, 0});
    }
    mx::array w = value;
    std::string base = name.substr(0, name.size() - std::string(".weight").size());
    auto scales = raw.find(base + ".scales");
    if (scales != raw.end() && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      auto biases = raw.find(base + ".biases");
      int bits = w.shape(-1) / scales->second.shape(-1);
      // GGUF keeps scales and biases in float16 and dequantize computes in their dtype: widen them
      // first, or weights land up to 2 float16 ulps off llama.cpp's (gguf-py's) float32 values.
      std::optional<mx::array> bias;
      if (biases != raw.end()) bias = mx::astype(biases->second, mx::float32);
      w = mx::dequantize(w, mx::astype(scales->second, mx::float32), bias, 32, bits, "affine", std::nullopt, mx::float32);
    }
    if (source.gguf_rope_permuted) {
      if (ours.find("self_attn.q_proj") != std::string::npos) w = unpermute_rope_rows(w, c.num_attention_heads);
      if (ours.find("self_attn.k_proj") != std::string::npos) w = unpermute_rope_rows(w, c.num_key_value_heads);
    }
    out.insert_or_assign(ours, w);
  }
  return out;
}

Params load_safetensors_weights(const WeightSource& source, std::unordered_map<std::string, std::string>& origin) {
  Params out;
  for (const auto& file : source.files) {
    auto [tensors, metadata] = mx::load_safetensors(file);
    (void)metadata;
    for (auto& [name, value] : tensors) {
      if (name.size() > 7 && name.compare(name.size() - 7, 7, ".scales") == 0) {
        throw Error("E_MODEL_TENSOR",
                    "[load] " + file + " holds a quantized tensor (" + name +
                        "); load the unquantized model, or convert it with mlx_lm.convert without -q",
                    {file, name, 0});
      }
      out.insert_or_assign(name, value);
      origin[name] = file;
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> expected_tensor_names(const ModelConfig& c) {
  std::vector<std::string> names = {"model.embed_tokens.weight", "model.norm.weight"};
  if (!c.tie_word_embeddings) names.push_back("lm_head.weight");
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    for (const char* p : kProjections) names.push_back(layer(i) + p + ".weight");
    names.push_back(layer(i) + "input_layernorm.weight");
    names.push_back(layer(i) + "post_attention_layernorm.weight");
    if (c.qkv_bias) {
      for (const char* p : {"q_proj", "k_proj", "v_proj"}) names.push_back(layer(i) + "self_attn." + p + ".bias");
    }
    if (c.o_bias) names.push_back(layer(i) + "self_attn.o_proj.bias");
    if (c.mlp_bias) {
      for (const char* p : {"gate_proj", "up_proj", "down_proj"}) names.push_back(layer(i) + "mlp." + p + ".bias");
    }
    if (c.qk_norm) {
      names.push_back(layer(i) + "self_attn.q_norm.weight");
      names.push_back(layer(i) + "self_attn.k_norm.weight");
    }
  }
  return names;
}

Params load_weights(const WeightSource& source, const ModelConfig& config, mx::Dtype dtype) {
  validate(config);
  if (source.files.empty()) throw Error("E_MODEL_FILES", "[load] no weight files were given");
  std::unordered_map<std::string, std::string> origin;
  Params raw;
  if (source.format == "gguf") {
    raw = load_gguf_weights(source, config);
  } else if (source.format == "safetensors") {
    raw = load_safetensors_weights(source, origin);
  } else {
    throw Error("E_MODEL_FILES", "[load] unknown weight format '" + source.format + "'");
  }
  std::string where = source.files.size() == 1 ? source.files[0] : source.files[0] + " (and other shards)";
  const int hd = config.resolved_head_dim();
  const int H = config.hidden_size;
  // Expected shapes: [out, in] for projections, [H] for norms.
  auto expected_shape = [&](const std::string& n) -> mx::Shape {
    auto ends = [&](const char* s) { return n.size() >= strlen(s) && n.compare(n.size() - strlen(s), strlen(s), s) == 0; };
    if (n == "model.embed_tokens.weight" || n == "lm_head.weight") return {config.vocab_size, H};
    if (ends("q_proj.weight")) return {config.num_attention_heads * hd, H};
    if (ends("k_proj.weight") || ends("v_proj.weight")) return {config.num_key_value_heads * hd, H};
    if (ends("o_proj.weight")) return {H, config.num_attention_heads * hd};
    if (ends("gate_proj.weight") || ends("up_proj.weight")) return {config.intermediate_size, H};
    if (ends("down_proj.weight")) return {H, config.intermediate_size};
    if (ends("q_proj.bias")) return {config.num_attention_heads * hd};
    if (ends("o_proj.bias") || ends("down_proj.bias")) return {H};
    if (ends("gate_proj.bias") || ends("up_proj.bias")) return {config.intermediate_size};
    if (ends("k_proj.bias") || ends("v_proj.bias")) return {config.num_key_value_heads * hd};
    if (ends("q_norm.weight") || ends("k_norm.weight")) return {hd};
    return {H};
  };
  Params out;
  for (const auto& name : expected_tensor_names(config)) {
    auto it = raw.find(name);
    if (it == raw.end()) {
      throw Error("E_MODEL_TENSOR", "[load] " + where + " has no tensor '" + name + "' (model_type " + config.model_type + ")",
                  {where, name, 0});
    }
    if (it->second.shape() != expected_shape(name)) {
      std::ostringstream os;
      os << "[load] tensor '" << name << "' has shape " << it->second.shape() << " but the config implies "
         << expected_shape(name);
      auto o = origin.find(name);
      throw Error("E_MODEL_TENSOR", os.str(), {o == origin.end() ? where : o->second, name, 0});
    }
    out.insert_or_assign(name, mx::astype(it->second, dtype));
  }
  for (const auto& [name, _] : raw) {
    if (out.count(name) || ignorable(name) || name == kRopeFreqFactors) continue;
    auto o = origin.find(name);
    throw Error("E_MODEL_TENSOR",
                "[load] unexpected tensor '" + name + "': the config (model_type " + config.model_type +
                    ") does not describe it, e.g. a bias or norm the config does not declare",
                {o == origin.end() ? where : o->second, name, 0});
  }
  if (auto f = raw.find(kRopeFreqFactors); f != raw.end()) out.insert_or_assign(kRopeFreqFactors, mx::astype(f->second, mx::float32));
  std::vector<mx::array> all;
  for (auto& [_, a] : out) all.push_back(a);
  mx::eval(all);  // materialise now: the files' buffers can go
  return out;
}

}  // namespace clara
