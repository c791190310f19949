// Data-parallel training over MLX's own distributed layer (mlx::core::distributed): the ring
// backend over TCP (MLX_RANK + MLX_HOSTFILE), or MPI / JACCL / NCCL where MLX was built with
// them. Each rank computes gradients on its slice of the global batch; they are averaged with
// all_sum before clipping, so the update equals the single-process one.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mlx/distributed/distributed.h"
#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

struct DataParallel {
  mx::distributed::Group group;
  int rank() const { return group.rank(); }
  int size() const { return group.size(); }
};

// Joins the group the launcher's environment describes. `backend`: "any", "ring", "mpi",
// "jaccl" or "nccl". Throws when no backend can form a group of more than one process.
DataParallel join_data_parallel(const std::string& backend);

// Σ over ranks / size, element-wise, for each array.
std::vector<mx::array> average_over_ranks(const std::vector<mx::array>& xs, const DataParallel& dp);

// Throws E_DISTRIBUTED unless every rank holds bit-identical `params` (a start-of-run check).
void check_identical(const std::vector<mx::array>& params, const DataParallel& dp);

}  // namespace clara
