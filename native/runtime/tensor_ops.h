// A handful of MLX ops applied to host tensors: the smallest surface through which lib/ and
// the tests can check that values cross into MLX and back unchanged (and that MLX errors
// come back as errors). Must run on the MLX thread.
#pragma once

#include <string>
#include <vector>

#include "common/host_tensor.h"

namespace clara {

// op: identity | add | multiply | matmul | sum | transpose | astype.
// `dtype` is the target of astype and ignored otherwise.
HostTensor apply_op(const std::string& op, const std::vector<HostTensor>& inputs, const std::string& dtype);

}  // namespace clara
