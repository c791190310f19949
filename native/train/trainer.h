// The one training step every stage shares (mlx-lm's train(loss=...)): value_and_grad of a
// loss over the named trainable parameters, gradient accumulation over micro-batches,
// global-norm clipping, AdamW with a schedule. Stages differ only in the loss they pass.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/params.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/losses.h"
#include "train/data_parallel.h"
#include "train/schedule.h"

namespace clara {

// What a loss function returns: the scalar to differentiate, the supervised token count and
// named components reported alongside (e.g. CLaRa's ce and mse).
struct LossTerms {
  mx::array loss;
  mx::array tokens;
  std::vector<std::pair<std::string, mx::array>> parts;
};

// The loss of one micro-batch, given the trainable parameters by name (overriding the model's).
using LossFunction = std::function<LossTerms(const Params& trainable)>;

// Every field is set by the caller: lib/ resolves and checks each setting once
// (lib/trainers/stage-config.ts, lib/clara/config.ts DEFAULTS); zeros here mean "unset", not a default.
struct TrainerConfig {
  AdamWConfig adamw;
  ScheduleConfig schedule;
  float max_grad_norm = 0.0f;
  // Micro-batches accumulate_all evaluates at once on CPU streams of their own (1: in turn).
  int lanes = 0;
  // Recompute each decoder layer in the backward pass (Model::set_checkpoint_layers).
  bool checkpoint_layers = false;
};

using NamedValues = std::vector<std::pair<std::string, float>>;

struct MicroBatchResult {
  float loss = 0;
  float tokens = 0;
  NamedValues parts;
};

struct StepResult {
  float loss = 0;       // mean of the micro-batches' token-mean losses (the reference's reduction)
  float tokens = 0;
  float grad_norm = 0;  // before clipping
  float lr = 0;
  int step = 0;         // optimizer updates done, this one included
  NamedValues parts;    // each component's mean over the micro-batches
  double allreduce_seconds = 0;  // time spent averaging gradients across ranks
  size_t active_memory = 0;      // allocator bytes in use after the update
  size_t peak_memory = 0;        // allocator high-water mark so far (runtime/runtime_info.h)
};

// The LoRA-dropout key of micro-batch `micro` of update `step` in a run seeded `seed`: distinct
// per micro-batch and reproducible, so a resumed run draws the masks an unbroken one would.
mx::array dropout_key(uint64_t seed, int step, int micro);

class Trainer {
 public:
  // `trainable`: flat names in model.extra(). Their values are read from and written back to
  // the model, so the model always holds the current weights.
  Trainer(Model& model, std::vector<std::string> trainable, TrainerConfig config);

  // Averages gradients (and reported losses) over the ranks of `dp` from now on, after checking
  // that every rank starts from the same weights.
  void enable_data_parallel(DataParallel dp);
  const std::optional<DataParallel>& data_parallel() const { return dp_; }

  const std::vector<std::string>& trainable() const { return names_; }
  const TrainerConfig& config() const { return config_; }
  AdamWState& optimizer_state() { return state_; }
  int step() const { return state_.step; }

  // Adds each micro-batch's gradients, in order (throws E_NONFINITE at a NaN or infinite loss,
  // leaving that micro-batch and the ones after it unapplied). On a CPU device two micro-batches
  // at a time run on two MLX streams: MLX's CPU backend executes a stream's ops one at a time on
  // one thread, so with one stream every non-GEMM op leaves the other core idle. Peak memory
  // then holds two micro-batches' activations instead of one; the sums are the same.
  std::vector<MicroBatchResult> accumulate_all(const std::vector<LossFunction>& losses);
  // Averages the accumulated gradients, clips, and applies one AdamW update.
  StepResult apply();
  // Loss and gradients of one batch without touching the optimizer (tests, finite differences).
  std::pair<LossTerms, std::vector<mx::array>> loss_and_grad(const LossFunction& loss) const;

 private:
  Model& model_;
  std::vector<std::string> names_;
  TrainerConfig config_;
  AdamWState state_;
  std::vector<mx::array> grad_sum_;
  int micro_batches_ = 0;
  double loss_sum_ = 0;
  double token_sum_ = 0;
  NamedValues part_sums_;
  std::optional<DataParallel> dp_;
  std::vector<mx::Stream> streams_;  // accumulate_all's streams, made on first use

  void reset_accumulation();
  // Adds one evaluated micro-batch (its loss terms and gradients) to the sums.
  MicroBatchResult add(const LossTerms& terms, std::vector<mx::array> sum);
  const std::vector<mx::Stream>& streams();
};

// Evaluates a loss function's terms without gradients (evaluation passes).
MicroBatchResult evaluate_terms(const LossTerms& terms);

}  // namespace clara
