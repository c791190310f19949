#include "runtime/runtime_info.h"

#include <filesystem>
#include <system_error>
#include <variant>

#include "mlx/backend/cuda/cuda.h"
#include "mlx/backend/metal/metal.h"
#include "mlx/mlx.h"

#if !defined(_WIN32)
#include <dlfcn.h>
#endif

namespace clara {

namespace mx = mlx::core;

std::string mlx_version() {
  return mx::version();
}

std::string library_defining(const char* symbol) {
#if defined(_WIN32)
  (void)symbol;
  return "";
#else
  void* address = dlsym(RTLD_DEFAULT, symbol);
  Dl_info info{};
  if (address == nullptr || dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
  // The loader reports the name it opened; resolve links so a redirected BLAS shows its real file.
  std::error_code ec;
  auto real = std::filesystem::canonical(info.dli_fname, ec);
  return ec ? std::string(info.dli_fname) : real.string();
#endif
}

RuntimeInfo runtime_info() {
  RuntimeInfo r;
  r.mlx_version = mx::version();
  if (mx::metal::is_available()) {
    r.backend = "metal";
  } else if (mx::cu::is_available()) {
    r.backend = "cuda";
  } else {
    r.backend = "cpu";
  }
  const mx::Device& d = mx::default_device();
  r.device = d.type == mx::Device::gpu ? "gpu" : "cpu";
  try {
    const auto& info = mx::device_info(d);
    auto it = info.find("device_name");
    if (it != info.end() && std::holds_alternative<std::string>(it->second)) {
      r.device_name = std::get<std::string>(it->second);
    }
  } catch (const std::exception&) {
    // Not every backend describes its devices; the name is cosmetic.
  }
  // cblas_sgemm is what MLX's CPU backend calls for float32 matmul (mlx-notes §2).
  r.blas_library = library_defining("cblas_sgemm");
  r.lapack_library = library_defining("sgetrf_");
  r.memory_limit = mx::get_memory_limit();
  return r;
}

MemoryInfo memory_info() {
  return {mx::get_active_memory(), mx::get_peak_memory(), mx::get_cache_memory(), mx::get_memory_limit()};
}

void reset_peak_memory() {
  mx::reset_peak_memory();
}

}  // namespace clara
