#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "model/weights.h"

namespace clara {

namespace {

constexpr int kLinearsPerLayer = 7;

// Llama-3 RoPE: per-frequency rescaling of the periods, as mlx-lm's Llama3RoPE computes them.
mx::array llama3_periods(const ModelConfig& c, int dims) {
  const RopeScaling& s = c.rope_scaling;
  float low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  float high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  mx::array periods = mx::power(mx::array(c.rope_theta), mx::divide(mx::arange(0, dims, 2, mx::float32), mx::array(float(dims))));
  mx::array wavelens = mx::multiply(mx::array(float(2 * M_PI)), periods);
  periods = mx::where(mx::greater(wavelens, mx::array(low_wavelen)), mx::multiply(periods, mx::array(s.factor)), periods);
  mx::array medium = mx::logical_and(mx::greater(wavelens, mx::array(high_wavelen)), mx::less(wavelens, mx::array(low_wavelen)));
  mx::array smooth = mx::divide(mx::subtract(mx::divide(mx::array(float(s.original_max_position_embeddings)), wavelens),
                                             mx::array(s.low_freq_factor)),
                                mx::array(s.high_freq_factor - s.low_freq_factor));
  mx::array smooth_periods =
      mx::divide(periods, mx::add(mx::divide(mx::subtract(mx::array(1.0f), smooth), mx::array(s.factor)), smooth));
  return mx::where(medium, smooth_periods, periods);
}

// Explicit RoPE periods when the plain base-θ ones do not apply: Llama-3 scaling, or the
// per-frequency factors a GGUF file carries (llama.cpp divides each frequency by its factor).
std::optional<mx::array> rope_periods(const ParamView& p, const ModelConfig& c) {
  int dims = c.resolved_head_dim();
  if (const mx::array* factors = p.find(kRopeFreqFactors)) {
    mx::array base = mx::power(mx::array(c.rope_theta), mx::divide(mx::arange(0, dims, 2, mx::float32), mx::array(float(dims))));
    return mx::multiply(base, *factors);
  }
  if (c.rope_scaling.type == "llama3") return llama3_periods(c, dims);
  return std::nullopt;
}

mx::array rope(const ModelConfig& c, const mx::array& x, int offset, const std::optional<mx::array>& periods) {
  int dims = c.resolved_head_dim();
  if (periods) return mx::fast::rope(x, dims, false, std::nullopt, 1.0f, offset, *periods);
  float scale = c.rope_scaling.type == "linear" ? 1.0f / c.rope_scaling.factor : 1.0f;
  return mx::fast::rope(x, dims, false, c.rope_theta, scale, offset);
}

// [B, 1, L, T] boolean mask: causal, minus left padding. Each query may always see itself, so a
// padding row never softmaxes over nothing (its output is unused but must stay finite).
std::optional<mx::array> attention_mask(const std::optional<mx::array>& key_valid, int L, int offset, int B) {
  int T = offset + L;
  mx::array q_pos = mx::reshape(mx::arange(offset, T, mx::int32), {L, 1});
  mx::array k_pos = mx::reshape(mx::arange(0, T, mx::int32), {1, T});
  mx::array causal = mx::less_equal(k_pos, q_pos);  // [L, T]
  if (!key_valid) return mx::reshape(causal, {1, 1, L, T});
  mx::array valid = mx::reshape(mx::astype(*key_valid, mx::bool_), {B, 1, 1, T});
  mx::array self = mx::reshape(mx::equal(k_pos, q_pos), {1, 1, L, T});
  return mx::logical_and(mx::reshape(causal, {1, 1, L, T}), mx::logical_or(valid, self));
}

mx::array sdpa(const mx::array& q, const mx::array& k, const mx::array& v, float scale, const std::optional<mx::array>& mask,
               bool causal_only) {
  if (causal_only) return mx::fast::scaled_dot_product_attention(q, k, v, scale, "causal");
  if (mask) return mx::fast::scaled_dot_product_attention(q, k, v, scale, "", *mask);
  return mx::fast::scaled_dot_product_attention(q, k, v, scale);
}

// Causal self-attention of a whole sequence, queries in blocks: block [s, e) sees keys [0, e)
// only. Without a fused kernel (the CPU path of SDPA) every query would score, mask and
// softmax all L keys, half of them above the diagonal; blocks of 128 skip most of that work
// (3/8 of it at L = 512) and its memory. Same outputs up to the order of float sums.
constexpr int kQueryBlock = 128;

mx::array causal_sdpa_in_blocks(const mx::array& q, const mx::array& k, const mx::array& v, float scale,
                                const std::optional<mx::array>& mask, bool causal_only) {
  int L = q.shape(2);
  if (L < 2 * kQueryBlock || (!causal_only && !mask)) return sdpa(q, k, v, scale, mask, causal_only);
  int blocks = (L + kQueryBlock - 1) / kQueryBlock;
  int size = (L + blocks - 1) / blocks;  // even blocks: no short tail
  std::vector<mx::array> out;
  for (int s = 0; s < L; s += size) {
    int e = std::min(L, s + size);
    auto rows = [&](const mx::array& a, int from, int to) {
      return mx::slice(a, {0, 0, from, 0}, {a.shape(0), a.shape(1), to, a.shape(3)});
    };
    mx::array qb = rows(q, s, e), kb = rows(k, 0, e), vb = rows(v, 0, e);
    // SDPA's "causal" aligns the last query with the last key, which is what block [s, e) needs.
    out.push_back(causal_only ? sdpa(qb, kb, vb, scale, std::nullopt, true)
                              : sdpa(qb, kb, vb, scale,
                                     mx::slice(*mask, {0, 0, s, 0}, {mask->shape(0), mask->shape(1), e, e}), false));
  }
  return mx::concatenate(out, 2);
}

mx::array attention(const ParamView& p, const ModelConfig& c, int layer, const mx::array& x, const std::optional<mx::array>& mask,
                    bool causal_only, const std::optional<mx::array>& periods, const ActiveAdapter& adapter, KVCache* cache,
                    int position_offset) {
  const std::string pre = "model.layers." + std::to_string(layer) + ".self_attn.";
  int B = x.shape(0), L = x.shape(1), nh = c.num_attention_heads, kvh = c.num_key_value_heads, D = c.resolved_head_dim();
  int base = layer * kLinearsPerLayer;
  mx::array q = mx::reshape(lora_linear(p, pre + "q_proj", x, adapter, base + 0), {B, L, nh, D});
  mx::array k = mx::reshape(lora_linear(p, pre + "k_proj", x, adapter, base + 1), {B, L, kvh, D});
  mx::array v = mx::reshape(lora_linear(p, pre + "v_proj", x, adapter, base + 2), {B, L, kvh, D});
  if (c.qk_norm) {  // Qwen3: RMSNorm over each head before RoPE
    q = mx::fast::rms_norm(q, p.at(pre + "q_norm.weight"), c.rms_norm_eps);
    k = mx::fast::rms_norm(k, p.at(pre + "k_norm.weight"), c.rms_norm_eps);
  }
  q = mx::transpose(q, {0, 2, 1, 3});  // [B, nh, L, D]
  k = mx::transpose(k, {0, 2, 1, 3});  // [B, kvh, L, D]
  v = mx::transpose(v, {0, 2, 1, 3});
  int offset = cache ? cache->offset : 0;
  q = rope(c, q, offset + position_offset, periods);
  k = rope(c, k, offset + position_offset, periods);
  if (cache) {
    int T = offset + L;
    mx::array& kc = cache->keys[layer];
    mx::array& vc = cache->values[layer];
    kc = mx::slice_update(kc, k, mx::Shape{0, 0, offset, 0}, mx::Shape{B, kvh, T, D});
    vc = mx::slice_update(vc, v, mx::Shape{0, 0, offset, 0}, mx::Shape{B, kvh, T, D});
    k = mx::slice(kc, {0, 0, 0, 0}, {B, kvh, T, D});
    v = mx::slice(vc, {0, 0, 0, 0}, {B, kvh, T, D});
  }
  float scale = 1.0f / std::sqrt(static_cast<float>(D));
  mx::array o = cache ? sdpa(q, k, v, scale, mask, causal_only) : causal_sdpa_in_blocks(q, k, v, scale, mask, causal_only);
  o = mx::reshape(mx::transpose(o, {0, 2, 1, 3}), {B, L, nh * D});
  return lora_linear(p, pre + "o_proj", o, adapter, base + 3);
}

mx::array mlp(const ParamView& p, int layer, const mx::array& x, const ActiveAdapter& adapter) {
  const std::string pre = "model.layers." + std::to_string(layer) + ".mlp.";
  int base = layer * kLinearsPerLayer;
  mx::array gate = lora_linear(p, pre + "gate_proj", x, adapter, base + 4);
  mx::array up = lora_linear(p, pre + "up_proj", x, adapter, base + 5);
  mx::array silu = mx::multiply(gate, mx::sigmoid(gate));
  return lora_linear(p, pre + "down_proj", mx::multiply(silu, up), adapter, base + 6);
}

// One decoder layer: pre-norm attention and MLP, each added to the residual stream.
mx::array decoder_layer(const ParamView& p, const ModelConfig& c, int layer, const mx::array& h, const std::optional<mx::array>& mask,
                        bool causal_only, const std::optional<mx::array>& periods, const ActiveAdapter& adapter, KVCache* cache,
                        int position_offset) {
  const std::string pre = "model.layers." + std::to_string(layer) + ".";
  mx::array x = mx::add(h, attention(p, c, layer, mx::fast::rms_norm(h, p.at(pre + "input_layernorm.weight"), c.rms_norm_eps), mask,
                                     causal_only, periods, adapter, cache, position_offset));
  return mx::add(x, mlp(p, layer, mx::fast::rms_norm(x, p.at(pre + "post_attention_layernorm.weight"), c.rms_norm_eps), adapter));
}

// The same layer under mx::checkpoint: only its input is kept for the backward pass, which runs
// the layer again. The layer's tunable tensors (overrides, adapters) are the checkpoint's inputs,
// or no gradient would reach them; everything else is captured by value, because the backward
// pass calls this after the forward's locals (and the trainer's override map) are gone.
mx::array checkpointed_layer(const ParamView& p, const ModelConfig& c, int layer, const mx::array& h,
                             const std::optional<mx::array>& mask, bool causal_only, const std::optional<mx::array>& periods,
                             const ActiveAdapter& adapter, int position_offset) {
  ParamView::Split split = p.split_under("model.layers." + std::to_string(layer) + ".");
  std::vector<std::string> names;
  std::vector<mx::array> inputs{h};
  for (auto& [name, value] : split.tunable) {
    names.push_back(name);
    inputs.push_back(value);
  }
  auto run = mx::checkpoint([frozen = std::move(split.frozen), names, c, layer, mask, causal_only, periods, adapter,
                             position_offset](const std::vector<mx::array>& in) {
    Params params = frozen;
    for (size_t j = 0; j < names.size(); ++j) params.insert_or_assign(names[j], in[j + 1]);
    ParamView view({&params});
    return std::vector<mx::array>{decoder_layer(view, c, layer, in[0], mask, causal_only, periods, adapter, nullptr, position_offset)};
  });
  return run(inputs)[0];
}

}  // namespace

KVCache make_kv_cache(const ModelConfig& c, int batch, int capacity, mx::Dtype dtype) {
  KVCache cache;
  cache.capacity = capacity;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    cache.keys.push_back(mx::zeros({batch, c.num_key_value_heads, capacity, c.resolved_head_dim()}, dtype));
    cache.values.push_back(mx::zeros({batch, c.num_key_value_heads, capacity, c.resolved_head_dim()}, dtype));
  }
  return cache;
}

mx::array embed_tokens(const ParamView& p, const mx::array& ids, const VocabExtension* extension) {
  const mx::array& table = p.at("model.embed_tokens.weight");
  if (extension == nullptr) return mx::take(table, ids, 0);
  const mx::array* extra = &extension->embed_rows;
  // Gathering from each table and choosing per id avoids concatenating [V, H] every step.
  int base_vocab = extension->first_id;
  mx::array is_extra = mx::greater_equal(ids, mx::array(base_vocab));
  mx::array from_base = mx::take(table, mx::minimum(ids, mx::array(base_vocab - 1)), 0);
  mx::array from_extra = mx::take(*extra, mx::maximum(mx::subtract(ids, mx::array(base_vocab)), mx::array(0)), 0);
  return mx::where(mx::expand_dims(is_extra, -1), from_extra, from_base);
}

mx::array decoder_hidden(const ParamView& p, const ModelConfig& c, const mx::array& embeddings,
                         const std::optional<mx::array>& key_valid, const ActiveAdapter& adapter, KVCache* cache,
                         int position_offset) {
  if (position_offset < 0) invalid_argument("decoder", "position offset must be >= 0");
  if (embeddings.ndim() != 3 || embeddings.shape(2) != c.hidden_size) {
    invalid_argument("decoder", "embeddings must be [B, L, hidden_size]");
  }
  int B = embeddings.shape(0), L = embeddings.shape(1);
  int offset = cache ? cache->offset : 0;
  if (cache && offset + L > cache->capacity) invalid_argument("decoder", "KV cache capacity exceeded");
  if (key_valid && (key_valid->shape(0) != B || key_valid->shape(1) != offset + L)) {
    invalid_argument("decoder", "key mask must be [B, cache offset + L]");
  }
  // Unpadded full sequences take SDPA's causal fast path; anything else gets an explicit mask.
  bool causal_only = !key_valid && offset == 0 && L > 1;
  std::optional<mx::array> mask;
  if (!causal_only && (key_valid || L > 1)) mask = attention_mask(key_valid, L, offset, B);
  ActiveAdapter keyed = with_dropout_keys(adapter, c.num_hidden_layers * kLinearsPerLayer);
  std::optional<mx::array> periods = rope_periods(p, c);
  mx::array h = embeddings;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    h = keyed.checkpoint_layers && !cache
            ? checkpointed_layer(p, c, i, h, mask, causal_only, periods, keyed, position_offset)
            : decoder_layer(p, c, i, h, mask, causal_only, periods, keyed, cache, position_offset);
  }
  if (cache) cache->offset += L;
  return mx::fast::rms_norm(h, p.at("model.norm.weight"), c.rms_norm_eps);
}

mx::array lm_logits(const ParamView& p, const ModelConfig& c, const mx::array& hidden, const VocabExtension* extension) {
  const mx::array& head = c.tie_word_embeddings ? p.at("model.embed_tokens.weight") : p.at("lm_head.weight");
  if (!extension) return mx::matmul(hidden, mx::transpose(head));
  const mx::array& used = extension->first_id < head.shape(0) ? mx::slice(head, {0, 0}, {extension->first_id, head.shape(1)}) : head;
  return mx::concatenate({mx::matmul(hidden, mx::transpose(used)), mx::matmul(hidden, mx::transpose(extension->head_rows))}, -1);
}

}  // namespace clara
