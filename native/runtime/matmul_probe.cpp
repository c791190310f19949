#include "runtime/matmul_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/host_tensor.h"

namespace clara {

MatmulTiming time_matmul(int n, int iterations, int warmup, mx::Dtype dtype) {
  if (n <= 0 || n > 16384) invalid_argument("time_matmul", "n must be in 1..16384, got " + std::to_string(n));
  if (iterations <= 0) invalid_argument("time_matmul", "iterations must be positive");
  auto [key_a, key_b] = mx::random::split(mx::random::key(0));
  mx::array a = mx::astype(mx::random::normal({n, n}, mx::float32, 0.0f, 1.0f, key_a), dtype);
  mx::array b = mx::astype(mx::random::normal({n, n}, mx::float32, 0.0f, 1.0f, key_b), dtype);
  mx::eval({a, b});

  // Check row 0 of the product against a reduction that does not go through GEMM.
  mx::array c = mx::matmul(a, b);
  mx::array row = mx::sum(mx::multiply(mx::astype(mx::slice(a, {0, 0}, {1, n}), mx::float32),
                                       mx::transpose(mx::astype(b, mx::float32))),
                          1);
  mx::array err = mx::max(mx::abs(mx::subtract(mx::astype(mx::reshape(mx::slice(c, {0, 0}, {1, n}), {n}), mx::float32), row)));
  mx::eval({c, err});

  MatmulTiming t;
  t.n = n;
  t.dtype = dtype_name(dtype);
  t.max_abs_error = err.item<float>();
  for (int i = 0; i < warmup; ++i) mx::eval(mx::matmul(a, b));
  for (int i = 0; i < iterations; ++i) {
    auto start = std::chrono::steady_clock::now();
    mx::eval(mx::matmul(a, b));
    t.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::vector<double> sorted = t.seconds;
  std::sort(sorted.begin(), sorted.end());
  double flops = 2.0 * n * double(n) * n;
  t.best_gflops = flops / sorted.front() / 1e9;
  t.median_gflops = flops / sorted[sorted.size() / 2] / 1e9;
  return t;
}

}  // namespace clara
