#include "convert.h"

#include <cmath>
#include <cstring>

#include "errors.h"

namespace clara::binding {

namespace {

napi_typedarray_type typed_array_kind(mx::Dtype dtype) {
  switch (dtype.val()) {
    case mx::Dtype::Val::float32:
      return napi_float32_array;
    case mx::Dtype::Val::float16:
    case mx::Dtype::Val::bfloat16:
      return napi_uint16_array;
    case mx::Dtype::Val::int32:
      return napi_int32_array;
    case mx::Dtype::Val::uint32:
      return napi_uint32_array;
    default:
      return napi_uint8_array;  // uint8, bool
  }
}

const char* typed_array_name(napi_typedarray_type kind) {
  switch (kind) {
    case napi_float32_array:
      return "Float32Array";
    case napi_uint16_array:
      return "Uint16Array";
    case napi_int32_array:
      return "Int32Array";
    case napi_uint32_array:
      return "Uint32Array";
    default:
      return "Uint8Array";
  }
}

}  // namespace

HostTensor to_host_tensor(Napi::Env env, Napi::Value value, const std::string& field) {
  if (!value.IsObject()) throw_invalid_argument(env, field, "Expected a tensor {dtype, shape, data} for " + field);
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value dtype = obj.Get("dtype");
  if (!dtype.IsString()) throw_invalid_argument(env, field + ".dtype", "Expected a dtype string for " + field + ".dtype");
  HostTensor t;
  try {
    t.dtype = dtype_from_name(dtype.As<Napi::String>().Utf8Value());
  } catch (const std::exception& e) {
    throw_invalid_argument(env, field + ".dtype", e.what());
  }
  Napi::Value shape = obj.Get("shape");
  if (!shape.IsArray()) throw_invalid_argument(env, field + ".shape", "Expected an array of integers for " + field + ".shape");
  Napi::Array dims = shape.As<Napi::Array>();
  for (uint32_t i = 0; i < dims.Length(); ++i) {
    Napi::Value d = dims.Get(i);
    double v = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (v < 0 || v != static_cast<int>(v)) {
      throw_invalid_argument(env, field + ".shape", "Expected non-negative integers in " + field + ".shape");
    }
    t.shape.push_back(static_cast<int>(v));
  }
  Napi::Value data = obj.Get("data");
  napi_typedarray_type want = typed_array_kind(t.dtype);
  if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != want) {
    throw_invalid_argument(env, field + ".data",
                           std::string("Expected a ") + typed_array_name(want) + " for " + field + ".data of dtype " +
                               dtype_name(t.dtype));
  }
  Napi::TypedArray array = data.As<Napi::TypedArray>();
  if (array.ElementLength() != t.size()) {
    throw_invalid_argument(env, field + ".data",
                           field + ".data has " + std::to_string(array.ElementLength()) + " elements but its shape needs " +
                               std::to_string(t.size()));
  }
  t.bytes.resize(array.ByteLength());
  if (!t.bytes.empty()) {
    const uint8_t* src = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    std::memcpy(t.bytes.data(), src, t.bytes.size());
  }
  return t;
}

Napi::Object to_js_tensor(Napi::Env env, const HostTensor& t) {
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, t.bytes.size());
  if (!t.bytes.empty()) std::memcpy(buffer.Data(), t.bytes.data(), t.bytes.size());
  napi_typedarray_type kind = typed_array_kind(t.dtype);
  size_t length = t.bytes.size() / mx::size_of(t.dtype);
  napi_value typed;
  if (napi_create_typedarray(env, kind, length, buffer, 0, &typed) != napi_ok) {
    throw Napi::Error::New(env, "[to_js_tensor] could not create a typed array");
  }
  Napi::Array shape = Napi::Array::New(env, t.shape.size());
  for (size_t i = 0; i < t.shape.size(); ++i) shape.Set(static_cast<uint32_t>(i), t.shape[i]);
  Napi::Object out = Napi::Object::New(env);
  out.Set("dtype", dtype_name(t.dtype));
  out.Set("shape", shape);
  out.Set("data", Napi::Value(env, typed));
  return out;
}

int int_option(Napi::Object options, const char* name, int fallback, int min, int max) {
  Napi::Value v = options.Get(name);
  if (v.IsUndefined()) return fallback;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : min - 1.0;
  if (d != static_cast<int>(d) || d < min || d > max) {
    throw_invalid_argument(options.Env(), name,
                           std::string("Expected an integer in ") + std::to_string(min) + ".." + std::to_string(max) +
                               " for " + name);
  }
  return static_cast<int>(d);
}

namespace {
void require(Napi::Object options, const char* name) {
  if (options.Get(name).IsUndefined()) {
    throw_invalid_argument(options.Env(), name, std::string("Missing ") + name + " (lib/ passes every setting; the binding holds no defaults)");
  }
}
}  // namespace

int required_int(Napi::Object options, const char* name, int min, int max) {
  require(options, name);
  return int_option(options, name, 0, min, max);
}

double required_number(Napi::Object options, const char* name, double min, double max) {
  require(options, name);
  return number_option(options, name, 0, min, max);
}

std::string required_string(Napi::Object options, const char* name) {
  require(options, name);
  return string_option(options, name, "");
}

bool required_bool(Napi::Object options, const char* name) {
  require(options, name);
  return bool_option(options, name, false);
}

double number_option(Napi::Object options, const char* name, double fallback, double min, double max) {
  Napi::Value v = options.Get(name);
  if (v.IsUndefined()) return fallback;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : std::nan("");
  if (!(d >= min && d <= max)) {
    throw_invalid_argument(options.Env(), name,
                           std::string("Expected a number in ") + std::to_string(min) + ".." + std::to_string(max) + " for " + name);
  }
  return d;
}

bool bool_option(Napi::Object options, const char* name, bool fallback) {
  Napi::Value v = options.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw_invalid_argument(options.Env(), name, std::string("Expected a boolean for ") + name);
  return v.As<Napi::Boolean>().Value();
}

std::vector<int> int_list_option(Napi::Object options, const char* name) {
  std::vector<int> out;
  Napi::Value v = options.Get(name);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw_invalid_argument(options.Env(), name, std::string("Expected an array of integers for ") + name);
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throw_invalid_argument(options.Env(), name, std::string("Expected an array of integers for ") + name);
    out.push_back(e.As<Napi::Number>().Int32Value());
  }
  return out;
}

std::vector<std::string> string_list_option(Napi::Object options, const char* name) {
  std::vector<std::string> out;
  Napi::Value v = options.Get(name);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw_invalid_argument(options.Env(), name, std::string("Expected an array of strings for ") + name);
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) throw_invalid_argument(options.Env(), name, std::string("Expected an array of strings for ") + name);
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Object object_arg(Napi::Env env, Napi::Value v, const std::string& field) {
  if (v.IsUndefined()) return Napi::Object::New(env);
  if (!v.IsObject()) throw_invalid_argument(env, field, "Expected an object for " + field);
  return v.As<Napi::Object>();
}

std::string string_option(Napi::Object options, const char* name, const std::string& fallback) {
  Napi::Value v = options.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throw_invalid_argument(options.Env(), name, std::string("Expected a string for ") + name);
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace clara::binding
