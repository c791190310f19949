// NativeModel: the JS object that owns a loaded model (and its trainer) living on the MLX
// thread. JS holds only this handle; weights never cross into V8.
#pragma once

#include <memory>

#include <napi.h>

namespace clara::binding {

// Lives on the MLX thread: only jobs queued there touch it.
struct ModelState;

class ModelHandle : public Napi::ObjectWrap<ModelHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  // loadModel(spec) -> Promise<NativeModel>
  static Napi::Value Load(const Napi::CallbackInfo& info);

  explicit ModelHandle(const Napi::CallbackInfo& info);
  ~ModelHandle() override;

 private:
  std::shared_ptr<ModelState> state(Napi::Env env) const;

  Napi::Value Logits(const Napi::CallbackInfo& info);
  Napi::Value Hidden(const Napi::CallbackInfo& info);
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value AddAdapter(const Napi::CallbackInfo& info);
  Napi::Value CopyAdapter(const Napi::CallbackInfo& info);
  Napi::Value RemoveAdapter(const Napi::CallbackInfo& info);
  Napi::Value Adapters(const Napi::CallbackInfo& info);
  Napi::Value GetParameters(const Napi::CallbackInfo& info);
  Napi::Value SetParameters(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // Training (model_train.cpp)
  Napi::Value CreateTrainer(const Napi::CallbackInfo& info);
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value EvalLosses(const Napi::CallbackInfo& info);
  Napi::Value LmLossAndGrad(const Napi::CallbackInfo& info);
  Napi::Value OptimizerState(const Napi::CallbackInfo& info);
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value MeanOverRanks(const Napi::CallbackInfo& info);

  // CLaRa (model_clara.cpp)
  Napi::Value ClaraInit(const Napi::CallbackInfo& info);
  Napi::Value ClaraCalibrateMemoryInput(const Napi::CallbackInfo& info);
  Napi::Value ClaraCompress(const Napi::CallbackInfo& info);
  Napi::Value ClaraGenerate(const Napi::CallbackInfo& info);
  Napi::Value ClaraRetrieve(const Napi::CallbackInfo& info);
  Napi::Value IndexAdd(const Napi::CallbackInfo& info);
  Napi::Value IndexSearch(const Napi::CallbackInfo& info);
  Napi::Value IndexDrop(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelState> state_;
};

}  // namespace clara::binding
