// Maps native failures to the ClaraError class that lib/errors.ts hands over at load time.
#pragma once

#include <exception>
#include <string>

#include <napi.h>

namespace clara::binding {

struct ErrorInfo {
  std::string code = "E_NATIVE";
  std::string message;
  std::string file;
  std::string field;
  int line = 0;
};

// Captures any exception (clara::Error, MLX's std exceptions, anything else) as plain data,
// so it can travel from the MLX thread to the JS thread.
ErrorInfo capture(std::exception_ptr error);

void set_error_class(Napi::Env env, Napi::Function cls);
Napi::Value make_error(Napi::Env env, const ErrorInfo& info);
[[noreturn]] void throw_error(Napi::Env env, const ErrorInfo& info);
[[noreturn]] void throw_invalid_argument(Napi::Env env, const std::string& field, const std::string& message);

}  // namespace clara::binding
