#include "train/data_parallel.h"

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "mlx/distributed/ops.h"

namespace clara {

DataParallel join_data_parallel(const std::string& backend) {
  if (!mx::distributed::is_available(backend == "any" ? std::string("ring") : backend) && !mx::distributed::is_available()) {
    throw Error("E_DISTRIBUTED", "[distributed] MLX was built without a distributed backend");
  }
  mx::distributed::Group g = mx::distributed::init(true, backend);
  if (g.size() < 2) {
    throw Error("E_DISTRIBUTED", "[distributed] the '" + backend +
                                     "' backend formed a group of one process; start the ranks with clara-train launch (MLX_RANK, MLX_HOSTFILE)");
  }
  return {g};
}

std::vector<mx::array> average_over_ranks(const std::vector<mx::array>& xs, const DataParallel& dp) {
  std::vector<mx::array> out;
  out.reserve(xs.size());
  // The communication ops run on the CPU stream in every backend MLX has for them.
  for (const auto& x : xs) {
    out.push_back(mx::divide(mx::distributed::all_sum(x, dp.group, mx::Device::cpu), mx::array(float(dp.size()), x.dtype())));
  }
  return out;
}

void check_identical(const std::vector<mx::array>& params, const DataParallel& dp) {
  // A checksum per rank: Σ of every parameter's sum and sum of squares, in float32. Gathered,
  // every rank's pair must equal rank 0's exactly.
  mx::array local = mx::zeros({2}, mx::float32);
  for (const auto& p : params) {
    mx::array p32 = mx::astype(p, mx::float32);
    local = mx::add(local, mx::stack({mx::sum(p32), mx::sum(mx::square(p32))}));
  }
  mx::array all = mx::distributed::all_gather(mx::reshape(local, {1, 2}), dp.group, mx::Device::cpu);  // [size, 2]
  mx::eval(all);
  const float* v = all.data<float>();
  for (int r = 1; r < dp.size(); ++r) {
    if (std::memcmp(v, v + 2 * r, 2 * sizeof(float)) != 0) {
      throw Error("E_DISTRIBUTED", "[distributed] rank " + std::to_string(r) +
                                       " starts from different weights than rank 0 (checksum mismatch); use the same seed and checkpoint on every rank");
    }
  }
}

}  // namespace clara
