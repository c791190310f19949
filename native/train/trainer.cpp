#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "runtime/runtime_info.h"
#include "train/grad.h"

namespace clara {

Trainer::Trainer(Model& model, std::vector<std::string> trainable, TrainerConfig config)
    : model_(model), names_(std::move(trainable)), config_(std::move(config)) {
  if (names_.empty()) invalid_argument("trainer", "nothing to train: the trainable set is empty");
  std::vector<mx::array> values;
  for (const auto& n : names_) {
    auto it = model_.extra().find(n);
    if (it == model_.extra().end()) invalid_argument("trainer", "no trainable parameter named '" + n + "'");
    values.push_back(it->second);
  }
  state_ = adamw_init(values);
  model_.set_checkpoint_layers(config_.checkpoint_layers);
  mx::eval(state_.m);
  mx::eval(state_.v);
}

std::pair<LossTerms, std::vector<mx::array>> Trainer::loss_and_grad(const LossFunction& loss) const {
  std::vector<std::string> part_names;
  auto fn = [&](const std::vector<mx::array>& inputs) {
    Params overrides;
    for (size_t i = 0; i < names_.size(); ++i) overrides.insert_or_assign(names_[i], inputs[i]);
    LossTerms l = loss(overrides);
    std::vector<mx::array> out{l.loss, l.tokens};
    part_names.clear();
    for (auto& [name, value] : l.parts) {
      part_names.push_back(name);
      out.push_back(value);
    }
    return out;
  };
  std::vector<mx::array> values;
  std::vector<int> argnums;
  for (size_t i = 0; i < names_.size(); ++i) {
    values.push_back(model_.extra().at(names_[i]));
    argnums.push_back(static_cast<int>(i));
  }
  auto [outputs, grads] = mx::value_and_grad(fn, argnums)(values);
  LossTerms terms{outputs[0], outputs[1], {}};
  for (size_t i = 0; i < part_names.size(); ++i) terms.parts.emplace_back(part_names[i], outputs[2 + i]);
  return {terms, grads};
}

MicroBatchResult evaluate_terms(const LossTerms& terms) {
  std::vector<mx::array> outs{terms.loss, terms.tokens};
  for (const auto& [_, v] : terms.parts) outs.push_back(v);
  mx::eval(outs);
  MicroBatchResult r{terms.loss.item<float>(), terms.tokens.item<float>(), {}};
  for (const auto& [name, v] : terms.parts) r.parts.emplace_back(name, v.item<float>());
  return r;
}

void Trainer::reset_accumulation() {
  grad_sum_.clear();
  micro_batches_ = 0;
  loss_sum_ = token_sum_ = 0;
  part_sums_.clear();
}

const std::vector<mx::Stream>& Trainer::streams() {
  if (streams_.empty()) {
    mx::Device device = mx::default_device();
    streams_.push_back(mx::default_stream(device));
    if (device == mx::Device::cpu && config_.lanes > 1) streams_.push_back(mx::new_stream(device));
  }
  return streams_;
}

std::vector<MicroBatchResult> Trainer::accumulate_all(const std::vector<LossFunction>& losses) {
  const std::vector<mx::Stream>& lanes = streams();
  std::vector<MicroBatchResult> results;
  for (size_t first = 0; first < losses.size(); first += lanes.size()) {
    size_t count = std::min(lanes.size(), losses.size() - first);
    std::vector<LossTerms> terms;
    std::vector<std::vector<mx::array>> sums;
    std::vector<mx::array> to_eval;
    for (size_t j = 0; j < count; ++j) {
      // Every op of this micro-batch, its backward included, runs on its lane's stream.
      mx::StreamContext lane(lanes[j]);
      auto [l, grads] = loss_and_grad(losses[first + j]);
      // Summed in micro-batch order whatever the lanes, so the result does not depend on them.
      const std::vector<mx::array>& previous = !sums.empty() ? sums.back() : grad_sum_;
      std::vector<mx::array> sum;
      for (size_t i = 0; i < grads.size(); ++i) sum.push_back(previous.empty() ? grads[i] : mx::add(previous[i], grads[i]));
      to_eval.push_back(l.loss);
      to_eval.push_back(l.tokens);
      for (const auto& [_, v] : l.parts) to_eval.push_back(v);
      terms.push_back(std::move(l));
      sums.push_back(std::move(sum));
    }
    to_eval.insert(to_eval.end(), sums.back().begin(), sums.back().end());
    mx::eval(to_eval);
    for (size_t j = 0; j < count; ++j) results.push_back(add(terms[j], sums[j]));
  }
  return results;
}

MicroBatchResult Trainer::add(const LossTerms& terms, std::vector<mx::array> sum) {
  MicroBatchResult result = evaluate_terms(terms);
  float value = result.loss;
  if (!std::isfinite(value)) {
    throw Error("E_NONFINITE", "[train] the loss is " + std::to_string(value) +
                                   " at this micro-batch; nothing was applied. Likely causes: a learning rate too high, "
                                   "or a batch with no supervised tokens");
  }
  grad_sum_ = std::move(sum);
  micro_batches_ += 1;
  loss_sum_ += value;
  token_sum_ += result.tokens;
  if (part_sums_.empty()) part_sums_ = result.parts;
  else for (size_t i = 0; i < part_sums_.size(); ++i) part_sums_[i].second += result.parts[i].second;
  return result;
}

void Trainer::enable_data_parallel(DataParallel dp) {
  std::vector<mx::array> params;
  for (const auto& n : names_) params.push_back(model_.extra().at(n));
  check_identical(params, dp);
  dp_ = std::move(dp);
}

StepResult Trainer::apply() {
  if (micro_batches_ == 0) invalid_argument("trainer", "apply() before any accumulate_all()");
  std::vector<mx::array> grads;
  for (const auto& g : grad_sum_) grads.push_back(mx::divide(g, mx::array(static_cast<float>(micro_batches_), g.dtype())));
  double allreduce_seconds = 0;
  if (dp_) {
    // Every rank ran the same number of micro-batches, so the mean of the ranks' means is the
    // mean over the global batch: the update equals the single-process one (before clipping).
    mx::eval(grads);
    auto t0 = std::chrono::steady_clock::now();
    grads = average_over_ranks(grads, *dp_);
    mx::eval(grads);
    allreduce_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<mx::array> logged{mx::array(static_cast<float>(loss_sum_ / micro_batches_)), mx::array(static_cast<float>(token_sum_))};
    for (const auto& [_, v] : part_sums_) logged.push_back(mx::array(static_cast<float>(v / micro_batches_)));
    logged = average_over_ranks(logged, *dp_);
    mx::eval(logged);
    loss_sum_ = logged[0].item<float>() * micro_batches_;
    token_sum_ = logged[1].item<float>() * dp_->size();
    for (size_t i = 0; i < part_sums_.size(); ++i) part_sums_[i].second = logged[2 + i].item<float>() * micro_batches_;
  }
  mx::array norm = global_norm(grads);
  mx::eval(norm);
  float norm_value = norm.item<float>();
  if (!std::isfinite(norm_value)) {
    reset_accumulation();
    throw Error("E_NONFINITE", "[train] the gradient norm is not finite; the update was skipped and the weights are unchanged");
  }
  grads = clip_by_global_norm(grads, norm, config_.max_grad_norm);
  std::vector<mx::array> params;
  for (const auto& n : names_) params.push_back(model_.extra().at(n));
  float lr = learning_rate(config_.schedule, state_.step);
  std::vector<mx::array> updated = adamw_update(params, grads, state_, lr, config_.adamw);
  std::vector<mx::array> to_eval = updated;
  to_eval.insert(to_eval.end(), state_.m.begin(), state_.m.end());
  to_eval.insert(to_eval.end(), state_.v.begin(), state_.v.end());
  mx::eval(to_eval);
  for (size_t i = 0; i < names_.size(); ++i) model_.extra().insert_or_assign(names_[i], updated[i]);
  StepResult r;
  r.loss = static_cast<float>(loss_sum_ / micro_batches_);
  r.tokens = static_cast<float>(token_sum_);
  r.grad_norm = norm_value;
  r.lr = lr;
  r.step = state_.step;
  r.allreduce_seconds = allreduce_seconds;
  MemoryInfo memory = memory_info();
  r.active_memory = memory.active;
  r.peak_memory = memory.peak;
  for (const auto& [name, total] : part_sums_) r.parts.emplace_back(name, total / micro_batches_);
  reset_accumulation();
  return r;
}

mx::array dropout_key(uint64_t seed, int step, int micro) {
  return mx::random::key(seed * 1000003ull + static_cast<uint64_t>(step) * 1009ull + static_cast<uint64_t>(micro));
}

}  // namespace clara
