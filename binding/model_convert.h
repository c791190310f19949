// Conversions between JS values and the native structs of models, batches and training,
// shared by the NativeModel methods (model_handle.cpp, model_clara.cpp).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <napi.h>

#include "clara/compressor.h"
#include "clara/stages.h"
#include "common/host_tensor.h"
#include "mlx_thread.h"
#include "model/config.h"
#include "model/generate.h"
#include "model/lora.h"
#include "train/lm_loss.h"
#include "train/trainer.h"

namespace clara::binding {

using NamedTensors = std::vector<std::pair<std::string, HostTensor>>;

// A batch as it arrives from JS, copied on the JS thread: ids [B, L] int32 and optional masks.
struct HostBatch {
  HostTensor ids;
  std::optional<HostTensor> key_valid;
  std::optional<HostTensor> loss_mask;
  int position_offset;  // encoder batches: padding columns left out before column 0
};

ModelConfig to_model_config(Napi::Object o);
LoraConfig to_lora_config(Napi::Object o);
Napi::Object lora_to_js(Napi::Env env, const std::string& name, const LoraConfig& l);
mx::Dtype compute_dtype(const std::string& name);  // MLX thread or JS thread
HostBatch to_host_batch(Napi::Env env, Napi::Value v, const std::string& field);
TokenBatch to_token_batch(const HostBatch& b);     // MLX thread
EncoderBatch to_encoder_batch(const HostBatch& b); // MLX thread
ClaraSpec to_clara_spec(Napi::Env env, Napi::Value v);
NamedTensors to_named_tensors(Napi::Env env, Napi::Value v, const std::string& field);
Napi::Array named_tensors_to_js(Napi::Env env, const NamedTensors& entries);
TrainerConfig to_trainer_config(Napi::Object o);
Napi::Object step_to_js(Napi::Env env, const StepResult& r);
GenerateOptions to_generate_options(Napi::Object o);
Napi::Object generation_to_js(Napi::Env env, const GenerateResult& r);
Napi::Object values_to_js(Napi::Env env, const NamedValues& values);
// A dropout key that depends only on (seed, step, micro-batch): resumed runs draw the same masks.
uint64_t seed_option(Napi::Object o, const char* name);
MlxThread& thread(Napi::Env env);

}  // namespace clara::binding
