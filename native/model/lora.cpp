#include "model/lora.h"

#include <cmath>

#include "common/error.h"
#include "model/weights.h"

namespace clara {

std::vector<std::string> adapted_linears(const ModelConfig& c) {
  std::vector<std::string> out;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    for (const char* p : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                          "mlp.up_proj", "mlp.down_proj"}) {
      out.push_back("model.layers." + std::to_string(i) + "." + p);
    }
  }
  return out;
}

std::string lora_a_name(const std::string& linear, const std::string& adapter) {
  return linear + ".lora." + adapter + ".a";
}

std::string lora_b_name(const std::string& linear, const std::string& adapter) {
  return linear + ".lora." + adapter + ".b";
}

Params init_adapter(const ModelConfig& c, const std::string& name, const LoraConfig& lora,
                    uint64_t seed, mx::Dtype dtype) {
  if (lora.rank <= 0) invalid_argument("lora", "rank must be positive");
  if (lora.dropout < 0 || lora.dropout >= 1) invalid_argument("lora", "dropout must be in [0, 1)");
  Params out;
  mx::array key = mx::random::key(seed);
  for (const auto& linear : adapted_linears(c)) {
    // From the config: a quantized weight's own shape is packed.
    mx::Shape w = expected_shape(c, linear + ".weight");  // [out, in]
    int out_features = w[0], in_features = w[1];
    auto [next, sub] = mx::random::split(key);
    key = next;
    float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
    out.insert_or_assign(lora_a_name(linear, name),
                         mx::random::uniform(mx::array(-bound), mx::array(bound), {in_features, lora.rank}, dtype, sub));
    out.insert_or_assign(lora_b_name(linear, name), mx::zeros({lora.rank, out_features}, dtype));
  }
  return out;
}

ActiveAdapter with_dropout_keys(const ActiveAdapter& adapter, int num_linears) {
  ActiveAdapter out = adapter;
  if (adapter.train && adapter.config.dropout > 0 && !adapter.name.empty()) {
    if (!adapter.key) invalid_argument("lora", "training with dropout needs a random key");
    out.dropout_keys = mx::random::split(*adapter.key, num_linears);
  }
  return out;
}

mx::array lora_linear(const ParamView& p, const std::string& linear, const mx::array& x, const ActiveAdapter& adapter,
                      int index) {
  const mx::array& w = p.at(linear + ".weight");
  mx::array y = [&] {
    const mx::array* scales = p.find(linear + ".scales");
    if (scales == nullptr) return mx::matmul(x, mx::transpose(w));
    // QLoRA: the frozen base stays packed; gradients flow to x (and so to the adapters), not to w.
    QuantizedLayout l = quantized_layout(w, *scales, x.shape(-1));
    return mx::quantized_matmul(x, w, *scales, p.at(linear + ".biases"), true, l.group_size, l.bits);
  }();
  if (const mx::array* bias = p.find(linear + ".bias")) y = mx::add(y, *bias);
  if (adapter.name.empty()) return y;
  const mx::array* a = p.find(lora_a_name(linear, adapter.name));
  if (a == nullptr) return y;  // an adapter may cover only some linears (e.g. a converted checkpoint)
  const mx::array& b = p.at(lora_b_name(linear, adapter.name));
  mx::array xin = x;
  if (adapter.train && adapter.config.dropout > 0) {
    if (!adapter.dropout_keys) invalid_argument("lora_linear", "training with dropout needs a random key");
    float keep = 1.0f - adapter.config.dropout;
    mx::array k = mx::take(*adapter.dropout_keys, index, 0);
    xin = mx::multiply(x, mx::multiply(mx::random::bernoulli(mx::array(keep), x.shape(), k), mx::array(1.0f / keep, x.dtype())));
  }
  mx::array delta = mx::matmul(mx::matmul(xin, *a), b);
  return mx::add(y, mx::multiply(delta, mx::array(adapter.config.scale(), y.dtype())));
}

}  // namespace clara
