#include "runtime/tensor_ops.h"

#include "common/error.h"

namespace clara {

namespace {
void expect_inputs(const std::string& op, const std::vector<HostTensor>& inputs, size_t n) {
  if (inputs.size() != n) {
    invalid_argument(op, "expects " + std::to_string(n) + " input(s), got " + std::to_string(inputs.size()));
  }
}
}  // namespace

HostTensor apply_op(const std::string& op, const std::vector<HostTensor>& inputs, const std::string& dtype) {
  std::vector<mx::array> xs;
  xs.reserve(inputs.size());
  for (const auto& t : inputs) xs.push_back(to_array(t));
  if (op == "identity") {
    expect_inputs(op, inputs, 1);
    return to_host(xs[0]);
  }
  if (op == "add") {
    expect_inputs(op, inputs, 2);
    return to_host(mx::add(xs[0], xs[1]));
  }
  if (op == "multiply") {
    expect_inputs(op, inputs, 2);
    return to_host(mx::multiply(xs[0], xs[1]));
  }
  if (op == "matmul") {
    expect_inputs(op, inputs, 2);
    return to_host(mx::matmul(xs[0], xs[1]));
  }
  if (op == "sum") {
    expect_inputs(op, inputs, 1);
    return to_host(mx::sum(xs[0]));
  }
  if (op == "transpose") {
    expect_inputs(op, inputs, 1);
    return to_host(mx::transpose(xs[0]));
  }
  if (op == "astype") {
    expect_inputs(op, inputs, 1);
    return to_host(mx::astype(xs[0], dtype_from_name(dtype)));
  }
  invalid_argument("apply_op", "unknown op '" + op + "'");
}

}  // namespace clara
