#include "model/config.h"

#include "common/error.h"

namespace clara {

namespace {
void require(bool ok, const std::string& field, const std::string& why) {
  if (!ok) throw Error("E_MODEL_CONFIG", "[config] " + field + " " + why, {"", field, 0});
}
}  // namespace

void validate(const ModelConfig& c) {
  const std::string t = c.model_type;
  require(t == "llama" || t == "mistral" || t == "qwen2" || t == "qwen3", "model_type",
          "'" + t + "' is not a supported Llama-family type (llama, mistral, qwen2, qwen3)");
  require(c.hidden_size > 0, "hidden_size", "must be positive");
  require(c.intermediate_size > 0, "intermediate_size", "must be positive");
  require(c.num_hidden_layers > 0, "num_hidden_layers", "must be positive");
  require(c.num_attention_heads > 0, "num_attention_heads", "must be positive");
  require(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0, "num_key_value_heads",
          "must divide num_attention_heads");
  require(c.head_dim > 0 || c.hidden_size % c.num_attention_heads == 0, "head_dim",
          "is needed when hidden_size is not a multiple of num_attention_heads");
  require(c.resolved_head_dim() % 2 == 0, "head_dim", "must be even for RoPE");
  require(c.vocab_size > 0, "vocab_size", "must be positive");
  require(c.rms_norm_eps > 0, "rms_norm_eps", "must be positive");
  require(c.rope_theta > 0, "rope_theta", "must be positive");
  const std::string s = c.rope_scaling.type;
  require(s == "default" || s == "linear" || s == "llama3", "rope_scaling.type",
          "'" + s + "' is not supported (default, linear, llama3)");
  require(c.rope_scaling.factor > 0, "rope_scaling.factor", "must be positive");
}

}  // namespace clara
