#include "common/error.h"

namespace clara {

void invalid_argument(const std::string& where, const std::string& message) {
  throw Error("E_INVALID_ARGUMENT", "[" + where + "] " + message);
}

}  // namespace clara
