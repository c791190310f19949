// Per-addon-instance state (a worker thread that loads the addon gets its own): the MLX
// thread and the error class lib/ handed over. Node's instance-data slot holds one object,
// so everything per instance lives here.
#pragma once

#include <memory>

#include <napi.h>

#include "mlx_thread.h"

namespace clara::binding {

struct AddonState {
  std::unique_ptr<MlxThread> mlx_thread;
  Napi::FunctionReference error_class;
  Napi::FunctionReference model_class;  // NativeModel, for handles made in completions
};

inline AddonState& addon_state(Napi::Env env) {
  return *env.GetInstanceData<AddonState>();
}

}  // namespace clara::binding
