// What a NativeModel handle owns: the model and its trainer. Lives on the MLX thread; only jobs
// queued there touch it.
#pragma once

#include <memory>
#include <optional>

#include <map>
#include <string>

#include "clara/vector_index.h"
#include "common/error.h"
#include "model/model.h"
#include "train/trainer.h"

namespace clara::binding {

struct ModelState {
  std::optional<Model> model;
  std::unique_ptr<Trainer> trainer;
  std::map<std::string, VectorIndex> indexes;  // by name (lib/retrieval/clara-index.ts)

  Model& get() {
    if (!model) throw Error("E_DISPOSED", "[model] this model was disposed");
    return *model;
  }
  Trainer& get_trainer() {
    if (!trainer) throw Error("E_NO_TRAINER", "[train] call createTrainer() first");
    return *trainer;
  }
};

}  // namespace clara::binding
