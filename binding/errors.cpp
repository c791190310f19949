#include "errors.h"

#include "addon_state.h"
#include "common/error.h"

namespace clara::binding {

ErrorInfo capture(std::exception_ptr error) {
  ErrorInfo info;
  try {
    std::rethrow_exception(error);
  } catch (const clara::Error& e) {
    info.code = e.code();
    info.message = e.what();
    info.file = e.details().file;
    info.field = e.details().field;
    info.line = e.details().line;
  } catch (const std::bad_alloc&) {
    info.code = "E_NATIVE";
    info.message = "[native] out of memory; lower the batch size or sequence length";
  } catch (const std::exception& e) {
    info.message = e.what();
  } catch (...) {
    info.message = "[native] unknown exception";
  }
  return info;
}

void set_error_class(Napi::Env env, Napi::Function cls) {
  addon_state(env).error_class = Napi::Persistent(cls);
}

Napi::Value make_error(Napi::Env env, const ErrorInfo& info) {
  Napi::Object details = Napi::Object::New(env);
  if (!info.file.empty()) details.Set("file", info.file);
  if (!info.field.empty()) details.Set("field", info.field);
  if (info.line > 0) details.Set("line", info.line);
  Napi::FunctionReference& cls = addon_state(env).error_class;
  if (!cls.IsEmpty()) {
    return cls.New({Napi::String::New(env, info.code), Napi::String::New(env, info.message), details});
  }
  Napi::Error plain = Napi::Error::New(env, info.message);
  plain.Set("code", info.code);
  return plain.Value();
}

void throw_error(Napi::Env env, const ErrorInfo& info) {
  throw Napi::Error(env, make_error(env, info));
}

void throw_invalid_argument(Napi::Env env, const std::string& field, const std::string& message) {
  ErrorInfo info;
  info.code = "E_INVALID_ARGUMENT";
  info.field = field;
  info.message = message;
  throw_error(env, info);
}

}  // namespace clara::binding
