// An in-memory cosine index over flattened compressed documents (n·H each): CLaRa's retrieval
// (spec §1.6) done once per query against a whole corpus instead of per-question candidates.
// Shapes: N documents, D = n·H, B queries, k results.
#pragma once

#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

class VectorIndex {
 public:
  // Appends [M, D] vectors (normalised here, once).
  void add(const mx::array& vectors);
  int size() const { return size_; }
  int dim() const { return dim_; }

  struct Hits {
    mx::array scores;   // [B, k] cosine similarities, best first
    mx::array indices;  // [B, k] int32
  };
  // queries [B, D]; documents are scanned in blocks so memory stays bounded by the block size.
  Hits search(const mx::array& queries, int k) const;
  // The stored vectors at `indices` [B, k] -> [B, k, D] (as added, not normalised).
  mx::array rows(const mx::array& indices) const;

 private:
  std::vector<mx::array> blocks_;     // [m, D] as added
  std::vector<mx::array> inv_norms_;  // [m] 1/‖row‖: cosine = (q̂ · row) / ‖row‖
  int size_ = 0;
  int dim_ = 0;
};

}  // namespace clara
