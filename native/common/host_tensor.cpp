#include "common/host_tensor.h"

#include <cstring>
#include <numeric>
#include <sstream>

#include "common/error.h"

namespace clara {

size_t HostTensor::size() const {
  return std::accumulate(shape.begin(), shape.end(), size_t{1}, [](size_t a, int d) { return a * d; });
}

mx::Dtype dtype_from_name(const std::string& name) {
  if (name == "float32") return mx::float32;
  if (name == "float16") return mx::float16;
  if (name == "bfloat16") return mx::bfloat16;
  if (name == "int32") return mx::int32;
  if (name == "uint32") return mx::uint32;
  if (name == "uint8") return mx::uint8;
  if (name == "bool") return mx::bool_;
  invalid_argument("dtype", "unsupported dtype '" + name +
                                "'; expected float32, float16, bfloat16, int32, uint32, uint8 or bool");
}

std::string dtype_name(mx::Dtype dtype) {
  if (dtype == mx::float32) return "float32";
  if (dtype == mx::float16) return "float16";
  if (dtype == mx::bfloat16) return "bfloat16";
  if (dtype == mx::int32) return "int32";
  if (dtype == mx::uint32) return "uint32";
  if (dtype == mx::uint8) return "uint8";
  if (dtype == mx::bool_) return "bool";
  std::ostringstream os;
  os << dtype;
  invalid_argument("dtype", "MLX dtype " + os.str() + " cannot leave native code; cast it first");
}

mx::array to_array(const HostTensor& t) {
  for (int d : t.shape) {
    if (d < 0) invalid_argument("to_array", "negative dimension in shape");
  }
  size_t expected = t.size() * mx::size_of(t.dtype);
  if (t.bytes.size() != expected) {
    invalid_argument("to_array", "got " + std::to_string(t.bytes.size()) + " bytes for a " +
                                     dtype_name(t.dtype) + " tensor that needs " + std::to_string(expected));
  }
  mx::Shape shape(t.shape.begin(), t.shape.end());
  if (t.bytes.empty()) return mx::zeros(shape, t.dtype);
  // The iterator constructor copies element-wise in the array's own type.
  switch (t.dtype.val()) {
    case mx::Dtype::Val::float32:
      return mx::array(reinterpret_cast<const float*>(t.bytes.data()), shape, t.dtype);
    case mx::Dtype::Val::float16:
      return mx::array(reinterpret_cast<const mx::float16_t*>(t.bytes.data()), shape, t.dtype);
    case mx::Dtype::Val::bfloat16:
      return mx::array(reinterpret_cast<const mx::bfloat16_t*>(t.bytes.data()), shape, t.dtype);
    case mx::Dtype::Val::int32:
      return mx::array(reinterpret_cast<const int32_t*>(t.bytes.data()), shape, t.dtype);
    case mx::Dtype::Val::uint32:
      return mx::array(reinterpret_cast<const uint32_t*>(t.bytes.data()), shape, t.dtype);
    case mx::Dtype::Val::uint8:
      return mx::array(reinterpret_cast<const uint8_t*>(t.bytes.data()), shape, t.dtype);
    case mx::Dtype::Val::bool_:
      return mx::array(reinterpret_cast<const bool*>(t.bytes.data()), shape, t.dtype);
    default:
      invalid_argument("to_array", "unsupported dtype " + dtype_name(t.dtype));
  }
}

std::vector<int32_t> host_ints(const HostTensor& t) {
  size_t n = t.size();
  if (t.bytes.size() != n * mx::size_of(t.dtype)) invalid_argument("host_ints", "byte count does not match the shape");
  std::vector<int32_t> out(n);
  const uint8_t* b = t.bytes.data();
  if (t.dtype == mx::int32 || t.dtype == mx::uint32) {
    std::memcpy(out.data(), b, n * 4);
  } else if (t.dtype == mx::uint8 || t.dtype == mx::bool_) {
    for (size_t i = 0; i < n; ++i) out[i] = b[i];
  } else {
    invalid_argument("host_ints", "expected an integer or bool tensor, got " + dtype_name(t.dtype));
  }
  return out;
}

HostTensor to_host(mx::array a) {
  HostTensor t;
  t.dtype = a.dtype();
  dtype_name(t.dtype);  // rejects dtypes that cannot cross before any work is done
  t.shape.assign(a.shape().begin(), a.shape().end());
  a = mx::contiguous(a);
  a.eval();
  t.bytes.resize(a.nbytes());
  if (a.nbytes() > 0) std::memcpy(t.bytes.data(), a.data<uint8_t>(), a.nbytes());
  return t;
}

}  // namespace clara
