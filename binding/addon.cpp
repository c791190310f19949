// Module init: one line per entry point. Each entry converts its arguments on the JS thread,
// queues the MLX work on the MLX thread, and converts the result back when it is done.
#include <napi.h>

#include "addon_state.h"
#include "convert.h"
#include "errors.h"
#include "mlx_thread.h"
#include "model_handle.h"
#include "runtime/matmul_probe.h"
#include "runtime/runtime_info.h"
#include "runtime/tensor_ops.h"
#include "clara/retrieval.h"

namespace clara::binding {

namespace {

MlxThread* mlx_thread(Napi::Env env) {
  return addon_state(env).mlx_thread.get();
}

Napi::Object to_js(Napi::Env env, const RuntimeInfo& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("mlxVersion", r.mlx_version);
  o.Set("backend", r.backend);
  o.Set("device", r.device);
  o.Set("deviceName", r.device_name);
  o.Set("blasLibrary", r.blas_library);
  o.Set("lapackLibrary", r.lapack_library);
  o.Set("memoryLimit", static_cast<double>(r.memory_limit));
  return o;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw_invalid_argument(info.Env(), "errorClass", "Expected a constructor for errorClass");
  set_error_class(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value MlxVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), mlx_version());
}

Napi::Value RuntimeInfoAsync(const Napi::CallbackInfo& info) {
  return mlx_thread(info.Env())->submit(info.Env(), [] {
    RuntimeInfo r = runtime_info();
    return Completion([r](Napi::Env env) -> Napi::Value { return to_js(env, r); });
  });
}

Napi::Value MemoryInfoAsync(const Napi::CallbackInfo& info) {
  bool reset = info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  return mlx_thread(info.Env())->submit(info.Env(), [reset] {
    MemoryInfo m = memory_info();
    if (reset) reset_peak_memory();
    return Completion([m](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("active", static_cast<double>(m.active));
      o.Set("peak", static_cast<double>(m.peak));
      o.Set("cache", static_cast<double>(m.cache));
      o.Set("limit", static_cast<double>(m.limit));
      return o;
    });
  });
}

// compute(op, tensors[], dtype?) -> Promise<tensor>
Napi::Value Compute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_invalid_argument(env, "op", "Expected a string for op");
  if (!info[1].IsArray()) throw_invalid_argument(env, "inputs", "Expected an array of tensors for inputs");
  std::string op = info[0].As<Napi::String>().Utf8Value();
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<HostTensor> inputs;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    inputs.push_back(to_host_tensor(env, list.Get(i), "inputs[" + std::to_string(i) + "]"));
  }
  std::string dtype = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  return mlx_thread(env)->submit(env, [op, inputs = std::move(inputs), dtype] {
    auto out = std::make_shared<HostTensor>(apply_op(op, inputs, dtype));
    return Completion([out](Napi::Env env) -> Napi::Value { return to_js_tensor(env, *out); });
  });
}

// matmulBenchmark({n, iterations, warmup, dtype}) -> Promise<{n, dtype, seconds[], bestGflops, ...}>
Napi::Value MatmulBenchmark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object options = info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  int n = int_option(options, "n", 1024, 1, 16384);
  int iterations = int_option(options, "iterations", 5, 1, 100000);
  int warmup = int_option(options, "warmup", 1, 0, 1000);
  std::string dtype_text = string_option(options, "dtype", "float32");
  mx::Dtype dtype = mx::float32;
  try {
    dtype = dtype_from_name(dtype_text);
  } catch (const std::exception& e) {
    throw_invalid_argument(env, "dtype", e.what());
  }
  return mlx_thread(env)->submit(env, [=] {
    MatmulTiming t = time_matmul(n, iterations, warmup, dtype);
    return Completion([t](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("n", t.n);
      o.Set("dtype", t.dtype);
      Napi::Array seconds = Napi::Array::New(env, t.seconds.size());
      for (size_t i = 0; i < t.seconds.size(); ++i) seconds.Set(static_cast<uint32_t>(i), t.seconds[i]);
      o.Set("seconds", seconds);
      o.Set("bestGflops", t.best_gflops);
      o.Set("medianGflops", t.median_gflops);
      o.Set("maxAbsError", t.max_abs_error);
      return o;
    });
  });
}

// differentiableTopK(scores [B, N], k, tau, cotangent [B, k, N]) -> {weights, indices, gradScores}:
// the straight-through top-k and the gradient of Σ cotangent·W with respect to the scores, so
// tests can hold it against finite differences of the soft relaxation.
Napi::Value DifferentiableTopK(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HostTensor scores = to_host_tensor(env, info[0], "scores");
  int k = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  float tau = info[2].IsNumber() ? info[2].As<Napi::Number>().FloatValue() : 0.02f;
  HostTensor cotangent = to_host_tensor(env, info[3], "cotangent");
  return mlx_thread(env)->submit(env, [scores, k, tau, cotangent] {
    mx::array s = to_array(scores);
    mx::array cot = to_array(cotangent);
    auto fn = [&](const std::vector<mx::array>& in) {
      TopK t = differentiable_topk(in[0], k, tau);
      return std::vector<mx::array>{mx::sum(mx::multiply(t.weights, cot)), t.weights, mx::astype(t.indices, mx::int32)};
    };
    auto [outs, grads] = mx::value_and_grad(fn, std::vector<int>{0})(std::vector<mx::array>{s});
    auto w = std::make_shared<HostTensor>(to_host(outs[1]));
    auto idx = std::make_shared<HostTensor>(to_host(outs[2]));
    auto g = std::make_shared<HostTensor>(to_host(grads[0]));
    return Completion([w, idx, g](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("weights", to_js_tensor(env, *w));
      o.Set("indices", to_js_tensor(env, *idx));
      o.Set("gradScores", to_js_tensor(env, *g));
      return o;
    });
  });
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* state = new AddonState();
  state->mlx_thread = std::make_unique<MlxThread>(env);
  env.SetInstanceData<AddonState>(state);  // deleted by Node when this env goes away

  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  exports.Set("mlxVersion", Napi::Function::New(env, MlxVersion));
  exports.Set("runtimeInfo", Napi::Function::New(env, RuntimeInfoAsync));
  exports.Set("memoryInfo", Napi::Function::New(env, MemoryInfoAsync));
  exports.Set("compute", Napi::Function::New(env, Compute));
  exports.Set("matmulBenchmark", Napi::Function::New(env, MatmulBenchmark));
  exports.Set("differentiableTopK", Napi::Function::New(env, DifferentiableTopK));
  exports.Set("NativeModel", ModelHandle::Define(env));
  exports.Set("loadModel", Napi::Function::New(env, ModelHandle::Load));
  return exports;
}

}  // namespace clara::binding

static Napi::Object InitClaraAddon(Napi::Env env, Napi::Object exports) {
  return clara::binding::Init(env, exports);
}

NODE_API_MODULE(clara, InitClaraAddon)
