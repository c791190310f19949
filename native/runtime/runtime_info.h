// What MLX runs on here: version, backend, device, the BLAS library the CPU backend really
// calls, and the allocator's counters. Must be called on the MLX thread (device queries and
// memory counters are per-process, but device_info may create a stream).
#pragma once

#include <cstddef>
#include <string>

namespace clara {

struct RuntimeInfo {
  std::string mlx_version;
  std::string backend;      // "metal", "cuda" or "cpu"
  std::string device;       // MLX's default device: "gpu" or "cpu"
  std::string device_name;  // from device_info when the backend reports one
  std::string blas_library; // the file that defines cblas_sgemm in this process
  std::string lapack_library;
  size_t memory_limit = 0;
};

struct MemoryInfo {
  size_t active = 0;
  size_t peak = 0;
  size_t cache = 0;
  size_t limit = 0;
};

std::string mlx_version();
RuntimeInfo runtime_info();
MemoryInfo memory_info();
void reset_peak_memory();

// The shared object that provides `symbol` in this process, or "" where it cannot be told
// (static linking, or a platform without dladdr).
std::string library_defining(const char* symbol);

}  // namespace clara
