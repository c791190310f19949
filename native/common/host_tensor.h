// HostTensor: a dtype, a shape and row-major bytes in host memory. It is how values cross
// between MLX and the outside world (JS typed arrays, .npz entries), so it owns a copy and
// never aliases an mx::array's buffer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mlx/mlx.h"

namespace clara {

namespace mx = mlx::core;

struct HostTensor {
  mx::Dtype dtype = mx::float32;
  std::vector<int> shape;
  std::vector<uint8_t> bytes;

  size_t size() const;
};

// The dtypes that may cross: float32, float16, bfloat16, int32, uint32, uint8, bool.
// Names are the ones lib/tensor.ts uses.
mx::Dtype dtype_from_name(const std::string& name);
std::string dtype_name(mx::Dtype dtype);

// Copies the bytes into a new MLX array. Throws if the byte count does not match the shape.
mx::array to_array(const HostTensor& t);

// The values of an integer or bool tensor as int32, read on the host (no MLX work).
std::vector<int32_t> host_ints(const HostTensor& t);

// Evaluates `a` and copies it out in row-major order. Must run on the MLX thread.
HostTensor to_host(mx::array a);

}  // namespace clara
