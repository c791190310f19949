// JS values <-> native structs. Runs on the JS thread only; copies data so the MLX thread
// never reads memory that V8 may move or free.
#pragma once

#include <string>

#include <napi.h>

#include "common/host_tensor.h"

namespace clara::binding {

// {dtype, shape, data} as lib/tensor.ts defines it -> a HostTensor (copied).
HostTensor to_host_tensor(Napi::Env env, Napi::Value value, const std::string& field);
// HostTensor -> {dtype, shape, data} with a fresh typed array of the matching kind.
Napi::Object to_js_tensor(Napi::Env env, const HostTensor& t);

int int_option(Napi::Object options, const char* name, int fallback, int min, int max);
// The same, for settings lib/ always sends (it holds every default): missing is a caller's bug.
int required_int(Napi::Object options, const char* name, int min, int max);
double required_number(Napi::Object options, const char* name, double min, double max);
std::string required_string(Napi::Object options, const char* name);
bool required_bool(Napi::Object options, const char* name);
double number_option(Napi::Object options, const char* name, double fallback, double min, double max);
bool bool_option(Napi::Object options, const char* name, bool fallback);
std::string string_option(Napi::Object options, const char* name, const std::string& fallback);
std::vector<int> int_list_option(Napi::Object options, const char* name);
std::vector<std::string> string_list_option(Napi::Object options, const char* name);
// The object itself, or an empty one when the argument is undefined; a TypeError otherwise.
Napi::Object object_arg(Napi::Env env, Napi::Value v, const std::string& field);

}  // namespace clara::binding
