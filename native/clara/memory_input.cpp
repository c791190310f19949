#include "clara/memory_input.h"

#include "common/error.h"

namespace clara {

mx::array memory_input(const ParamView& p, const mx::array& vectors) {
  const mx::array* scale = p.find(kMemoryInScale);
  const mx::array* shift = p.find(kMemoryInShift);
  if (!scale || !shift) return vectors;
  return mx::add(mx::multiply(vectors, mx::astype(*scale, vectors.dtype())), mx::astype(*shift, vectors.dtype()));
}

void calibrate_memory_input(Model& model, const mx::array& vectors, int first_new_id) {
  int H = model.config().hidden_size;
  if (vectors.ndim() != 3 || vectors.shape(2) != H) invalid_argument("memory_input", "calibration vectors must be [N, n, H]");
  if (vectors.shape(0) * vectors.shape(1) < 2) invalid_argument("memory_input", "calibration needs at least two vectors");
  const mx::array& table = model.view().at("model.embed_tokens.weight");
  if (first_new_id < 2 || first_new_id > table.shape(0)) invalid_argument("memory_input", "first_new_id out of the embedding table");
  // Statistics in float32 whatever the compute dtype: bf16 sums over 49k rows lose the mean.
  mx::array rows = mx::astype(mx::slice(table, {0, 0}, {first_new_id, H}), mx::float32);
  mx::array x = mx::astype(mx::reshape(vectors, {-1, H}), mx::float32);
  mx::array target_mean = mx::mean(rows, 0), target_std = mx::std(rows, 0);
  mx::array mean = mx::mean(x, 0), std = mx::maximum(mx::std(x, 0), mx::array(1e-6f));
  mx::array scale = mx::divide(target_std, std);
  mx::array shift = mx::subtract(target_mean, mx::multiply(mean, scale));
  mx::eval({scale, shift});
  model.extra().insert_or_assign(kMemoryInScale, mx::astype(scale, model.dtype()));
  model.extra().insert_or_assign(kMemoryInShift, mx::astype(shift, model.dtype()));
}

}  // namespace clara
