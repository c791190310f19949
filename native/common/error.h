// clara::Error: the one exception type native/ throws for problems it diagnoses itself.
// MLX's own exceptions (std::invalid_argument, std::runtime_error) pass through untouched;
// binding/ maps both to the ClaraError class that lib/ hands it.
#pragma once

#include <stdexcept>
#include <string>

namespace clara {

struct ErrorDetails {
  std::string file;
  std::string field;
  int line = 0;
};

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message, ErrorDetails details = {})
      : std::runtime_error(message), code_(std::move(code)), details_(std::move(details)) {}

  const std::string& code() const { return code_; }
  const ErrorDetails& details() const { return details_; }

 private:
  std::string code_;
  ErrorDetails details_;
};

// "[where] message" in MLX's style, with code E_INVALID_ARGUMENT.
[[noreturn]] void invalid_argument(const std::string& where, const std::string& message);

}  // namespace clara
