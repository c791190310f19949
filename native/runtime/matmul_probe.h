// Times C = A·B for square N×N matrices on MLX's default device: the yardstick for every
// FLOP/s fraction the benchmarks report. The result is checked before it is timed.
#pragma once

#include <string>
#include <vector>

#include "mlx/mlx.h"

namespace clara {

struct MatmulTiming {
  int n = 0;
  std::string dtype;
  std::vector<double> seconds;  // one entry per timed iteration
  double best_gflops = 0;
  double median_gflops = 0;
  double max_abs_error = 0;     // of a sampled row against an independent reduction
};

// Runs `warmup` untimed products, then `iterations` timed ones. Must run on the MLX thread.
MatmulTiming time_matmul(int n, int iterations, int warmup, mlx::core::Dtype dtype);

}  // namespace clara
