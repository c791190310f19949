#include "clara/vector_index.h"

#include <algorithm>

#include "common/error.h"

namespace clara {

namespace {
mx::array normalize_rows(const mx::array& x) {
  mx::array x32 = mx::astype(x, mx::float32);
  return mx::divide(x32, mx::maximum(mx::sqrt(mx::sum(mx::square(x32), -1, true)), mx::array(1e-12f)));
}
}  // namespace

void VectorIndex::add(const mx::array& vectors) {
  if (vectors.ndim() != 2) invalid_argument("index", "vectors must be [M, D]");
  if (dim_ != 0 && vectors.shape(1) != dim_) {
    invalid_argument("index", "vectors have dimension " + std::to_string(vectors.shape(1)) + ", the index " + std::to_string(dim_));
  }
  dim_ = vectors.shape(1);
  mx::array block = mx::astype(vectors, mx::float32);
  // Few large blocks keep search to a few matmuls; documents usually arrive a batch at a time.
  constexpr int kBlockRows = 8192;
  if (!blocks_.empty() && blocks_.back().shape(0) < kBlockRows) {
    block = mx::concatenate({blocks_.back(), block}, 0);
    blocks_.pop_back();
    inv_norms_.pop_back();
  }
  mx::array inv = mx::divide(mx::array(1.0f), mx::maximum(mx::sqrt(mx::sum(mx::square(block), -1)), mx::array(1e-12f)));
  mx::eval(block, inv);
  blocks_.push_back(block);
  inv_norms_.push_back(inv);
  size_ += vectors.shape(0);
}

VectorIndex::Hits VectorIndex::search(const mx::array& queries, int k) const {
  if (size_ == 0) invalid_argument("index", "the index is empty");
  if (queries.ndim() != 2 || queries.shape(1) != dim_) invalid_argument("index", "queries must be [B, D] with the index's D");
  k = std::min(k, size_);
  int B = queries.shape(0);
  mx::array q = normalize_rows(queries);
  // Keep a running top-k: merge each block's best k with the best so far.
  std::optional<mx::array> best_scores, best_indices;
  int offset = 0;
  for (size_t bi = 0; bi < blocks_.size(); ++bi) {
    const mx::array& block = blocks_[bi];
    mx::array s = mx::multiply(mx::matmul(q, mx::transpose(block)), inv_norms_[bi]);  // [B, m]
    int kk = std::min(k, block.shape(0));
    mx::array idx = mx::slice(mx::argsort(mx::negative(s), -1), {0, 0}, {B, kk});
    mx::array top = mx::take_along_axis(s, idx, -1);
    idx = mx::add(mx::astype(idx, mx::int32), mx::array(offset));
    if (best_scores) {
      mx::array all_s = mx::concatenate({*best_scores, top}, 1);
      mx::array all_i = mx::concatenate({*best_indices, idx}, 1);
      int keep = std::min(k, all_s.shape(1));
      mx::array order = mx::slice(mx::argsort(mx::negative(all_s), -1), {0, 0}, {B, keep});
      best_scores = mx::take_along_axis(all_s, order, -1);
      best_indices = mx::take_along_axis(all_i, order, -1);
    } else {
      best_scores = top;
      best_indices = idx;
    }
    mx::eval(*best_scores, *best_indices);
    offset += block.shape(0);
  }
  return {*best_scores, *best_indices};
}

mx::array VectorIndex::rows(const mx::array& indices) const {
  mx::array all = blocks_.size() == 1 ? blocks_[0] : mx::concatenate(blocks_, 0);
  return mx::take(all, mx::astype(indices, mx::int32), 0);
}

}  // namespace clara
