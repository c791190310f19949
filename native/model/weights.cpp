#include "model/weights.h"

#include <cstring>
#include <optional>
#include <regex>
#include <sstream>

#include "common/error.h"

namespace clara {

namespace {

const char* const kProjections[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

bool has_suffix(const std::string& s, const char* suffix) {
  size_t n = strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Tensors some checkpoints carry that the forward pass derives itself.
bool ignorable(const std::string& name) {
  return has_suffix(name, "rotary_emb.inv_freq");
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

// A tensor as a file holds it: float, or affine-quantized (packed uint32 + scales + biases).
struct SourceTensor {
  mx::array value;
  std::optional<mx::array> scales;
  std::optional<mx::array> biases;
  int group_size = 0;
};
using SourceTensors = std::unordered_map<std::string, SourceTensor>;

SourceTensors load_gguf_weights(const WeightSource& source, const ModelConfig& c) {
  const std::string& file = source.files.at(0);
  auto [raw, metadata] = mx::load_gguf(file);
  (void)metadata;  // lib/ reads the metadata itself; here only tensors matter
  SourceTensors out;
  for (auto& [name, value] : raw) {
    // MLX reads Q4_0/Q4_1/Q8_0 blocks as X.weight (packed uint32) + X.scales + X.biases in affine
    // groups of 32: the block's scale and minimum (or -8·d, -128·d) are exactly MLX's scale and bias.
    if (has_suffix(name, ".scales") || has_suffix(name, ".biases")) continue;
    std::string ours = from_gguf_name(name);
    if (ours.empty()) {
      throw Error("E_MODEL_TENSOR", "[load] " + file + " holds tensor '" + name + "' that this loader does not know",
                  {file, name, 0});
    }
    SourceTensor t{value, std::nullopt, std::nullopt, 0};
    if (has_suffix(name, ".weight")) {
      std::string base = name.substr(0, name.size() - std::string(".weight").size());
      if (auto s = raw.find(base + ".scales"); s != raw.end()) {
        t.scales = s->second;
        if (auto b = raw.find(base + ".biases"); b != raw.end()) t.biases = b->second;
        t.group_size = 32;
      }
    }
    if (source.gguf_rope_permuted) {
      int heads = ours.find("self_attn.q_proj") != std::string::npos   ? c.num_attention_heads
                  : ours.find("self_attn.k_proj") != std::string::npos ? c.num_key_value_heads
                                                                       : 0;
      if (heads > 0) {
        // A row permutation: packed rows, scales and biases move together.
        t.value = unpermute_rope_rows(t.value, heads);
        if (t.scales) t.scales = unpermute_rope_rows(*t.scales, heads);
        if (t.biases) t.biases = unpermute_rope_rows(*t.biases, heads);
      }
    }
    out.insert_or_assign(ours, std::move(t));
  }
  return out;
}

SourceTensors load_safetensors_weights(const WeightSource& source, std::unordered_map<std::string, std::string>& origin) {
  std::unordered_map<std::string, mx::array> all;
  for (const auto& file : source.files) {
    auto [tensors, metadata] = mx::load_safetensors(file);
    (void)metadata;
    for (auto& [name, value] : tensors) {
      all.insert_or_assign(name, value);
      origin[name] = file;
    }
  }
  SourceTensors out;
  for (auto& [name, value] : all) {
    if (has_suffix(name, ".scales") || has_suffix(name, ".biases")) continue;
    SourceTensor t{value, std::nullopt, std::nullopt, 0};
    std::string base = has_suffix(name, ".weight") ? name.substr(0, name.size() - 7) : "";
    if (auto s = all.find(base + ".scales"); !base.empty() && s != all.end()) {
      if (source.source_group_size <= 0) {
        throw Error("E_MODEL_CONFIG",
                    "[load] " + origin[name] + " holds a quantized tensor (" + base +
                        ".scales) but config.json has no \"quantization\": {\"group_size\", \"bits\"}; add it as mlx_lm.convert writes it",
                    {origin[name], "quantization", 0});
      }
      auto b = all.find(base + ".biases");
      if (b == all.end()) {
        throw Error("E_MODEL_TENSOR",
                    "[load] " + base + " is quantized without biases (not MLX's affine mode); only affine quantization is supported",
                    {origin[name], base + ".biases", 0});
      }
      t.scales = s->second;
      t.biases = b->second;
      t.group_size = source.source_group_size;
    }
    out.insert_or_assign(name, std::move(t));
  }
  for (auto& [name, _] : all) {
    if ((has_suffix(name, ".scales") || has_suffix(name, ".biases")) && !out.count(name.substr(0, name.size() - 7) + ".weight")) {
      throw Error("E_MODEL_TENSOR", "[load] '" + name + "' has no weight beside it", {origin[name], name, 0});
    }
  }
  return out;
}

// The float values of a source tensor. Scales and biases (float16 in GGUF) are widened first:
// dequantize computes in their dtype, and float16 would land up to 2 ulps off llama.cpp's
// (gguf-py's) float32 values.
mx::array dequantized(const SourceTensor& t) {
  if (!t.scales) return t.value;
  int in = t.scales->shape(-1) * t.group_size;
  int bits = t.value.shape(-1) * 32 / in;
  std::optional<mx::array> bias;
  if (t.biases) bias = mx::astype(*t.biases, mx::float32);
  return mx::dequantize(t.value, mx::astype(*t.scales, mx::float32), bias, t.group_size, bits, "affine", std::nullopt,
                        mx::float32);
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

mx::Shape expected_shape(const ModelConfig& c, const std::string& n) {
  const int hd = c.resolved_head_dim();
  const int H = c.hidden_size;
  auto ends = [&](const char* s) { return has_suffix(n, s); };
  if (n == "model.embed_tokens.weight" || n == "lm_head.weight") return {c.vocab_size, H};
  if (ends("q_proj.weight")) return {c.num_attention_heads * hd, H};
  if (ends("k_proj.weight") || ends("v_proj.weight")) return {c.num_key_value_heads * hd, H};
  if (ends("o_proj.weight")) return {H, c.num_attention_heads * hd};
  if (ends("gate_proj.weight") || ends("up_proj.weight")) return {c.intermediate_size, H};
  if (ends("down_proj.weight")) return {H, c.intermediate_size};
  if (ends("q_proj.bias")) return {c.num_attention_heads * hd};
  if (ends("o_proj.bias") || ends("down_proj.bias")) return {H};
  if (ends("gate_proj.bias") || ends("up_proj.bias")) return {c.intermediate_size};
  if (ends("k_proj.bias") || ends("v_proj.bias")) return {c.num_key_value_heads * hd};
  if (ends("q_norm.weight") || ends("k_norm.weight")) return {hd};
  return {H};
}

bool is_projection_weight(const std::string& name) {
  if (name.rfind("model.layers.", 0) != 0 || !has_suffix(name, ".weight")) return false;
  for (const char* p : kProjections) {
    if (has_suffix(name, (std::string(".") + p + ".weight").c_str())) return true;
  }
  return false;
}

QuantizedLayout quantized_layout(const mx::array& packed, const mx::array& scales, int in_features) {
  return {static_cast<int>(static_cast<int64_t>(packed.shape(-1)) * 32 / in_features), in_features / scales.shape(-1)};
}

Params load_weights(const WeightSource& source, const ModelConfig& config, mx::Dtype dtype) {
  validate(config);
  if (source.files.empty()) throw Error("E_MODEL_FILES", "[load] no weight files were given");
  const Quantization& q = source.quantization;
  if (q.mode != "float" && q.mode != "source" && q.mode != "affine") {
    invalid_argument("quantize", "mode must be float, source or affine, got '" + q.mode + "'");
  }
  if (q.mode == "affine" && (!(q.bits == 4 || q.bits == 8) || !(q.group_size == 32 || q.group_size == 64 || q.group_size == 128))) {
    invalid_argument("quantize", "bits must be 4 or 8 and groupSize 32, 64 or 128");
  }
  std::unordered_map<std::string, std::string> origin;
  SourceTensors raw;
  if (source.format == "gguf") {
    raw = load_gguf_weights(source, config);
  } else if (source.format == "safetensors") {
    raw = load_safetensors_weights(source, origin);
  } else {
    throw Error("E_MODEL_FILES", "[load] unknown weight format '" + source.format + "'");
  }
  std::string where = source.files.size() == 1 ? source.files[0] : source.files[0] + " (and other shards)";
  auto file_of = [&](const std::string& name) {
    auto o = origin.find(name);
    return o == origin.end() ? where : o->second;
  };
  auto shape_error = [&](const std::string& name, const std::string& what, const mx::Shape& got, const mx::Shape& want) {
    std::ostringstream os;
    os << "[load] tensor '" << name << "'" << what << " has shape " << got << " but the config implies " << want;
    throw Error("E_MODEL_TENSOR", os.str(), {file_of(name), name, 0});
  };
  Params out;
  for (const auto& name : expected_tensor_names(config)) {
    auto it = raw.find(name);
    if (it == raw.end()) {
      throw Error("E_MODEL_TENSOR", "[load] " + where + " has no tensor '" + name + "' (model_type " + config.model_type + ")",
                  {where, name, 0});
    }
    const SourceTensor& t = it->second;
    const mx::Shape want = expected_shape(config, name);
    const std::string stem = name.substr(0, name.size() - std::string(".weight").size());
    if (t.scales) {
      // A quantized tensor: its shapes must describe the float [out, in] the config implies.
      int in = want.back();
      if (t.scales->shape(-1) * t.group_size != in) shape_error(name, " (scales)", t.scales->shape(), {want[0], in / t.group_size});
      QuantizedLayout l = quantized_layout(t.value, *t.scales, in);
      if (t.value.shape() != mx::Shape{want[0], in * l.bits / 32} || !(l.bits == 2 || l.bits == 3 || l.bits == 4 || l.bits == 6 || l.bits == 8)) {
        shape_error(name, " (packed)", t.value.shape(), {want[0], in * l.bits / 32});
      }
      if (t.biases && t.biases->shape() != t.scales->shape()) shape_error(name, " (biases)", t.biases->shape(), t.scales->shape());
      bool keep = is_projection_weight(name) && t.biases &&
                  (q.mode == "source" || (q.mode == "affine" && l.bits == q.bits && t.group_size == q.group_size));
      if (keep) {
        out.insert_or_assign(name, t.value);
        out.insert_or_assign(stem + ".scales", mx::astype(*t.scales, dtype));
        out.insert_or_assign(stem + ".biases", mx::astype(*t.biases, dtype));
        continue;
      }
    } else if (t.value.shape() != want) {
      shape_error(name, "", t.value.shape(), want);
    }
    mx::array w = mx::astype(dequantized(t), dtype);
    if (q.mode == "affine" && is_projection_weight(name)) {
      std::vector<mx::array> wq = mx::quantize(w, q.group_size, q.bits);
      // One tensor at a time, so a large float model never sits in memory whole beside its quantized copy.
      mx::eval(wq);
      out.insert_or_assign(name, wq[0]);
      out.insert_or_assign(stem + ".scales", wq[1]);
      out.insert_or_assign(stem + ".biases", wq[2]);
      continue;
    }
    out.insert_or_assign(name, w);
  }
  for (const auto& [name, _] : raw) {
    if (out.count(name) || ignorable(name) || name == kRopeFreqFactors) continue;
    throw Error("E_MODEL_TENSOR",
                "[load] unexpected tensor '" + name + "': the config (model_type " + config.model_type +
                    ") does not describe it, e.g. a bias or norm the config does not declare",
                {file_of(name), name, 0});
  }
  if (auto f = raw.find(kRopeFreqFactors); f != raw.end()) out.insert_or_assign(kRopeFreqFactors, mx::astype(f->second.value, mx::float32));
  std::vector<mx::array> all;
  for (auto& [_, a] : out) all.push_back(a);
  mx::eval(all);  // materialise now: the files' buffers can go
  return out;
}

}  // namespace clara
