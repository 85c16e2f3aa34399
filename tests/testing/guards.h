#pragma once
// Scoped switches shared by the kernel tests: the SIMD paths this CPU can run, a limit on
// the run-time ISA choice, and the intra-op thread count.
#include <ATen/Parallel.h>

#include <vector>

#include "ops/cpu/kernels.h"

namespace qgnn::testing {

// Every SIMD path this CPU can run (AVX2 always, AVX-512 when present).
inline std::vector<cpu::Isa> isas() {
  std::vector<cpu::Isa> v{cpu::Isa::kAvx2};
  if (cpu::cpu_has_avx512()) v.push_back(cpu::Isa::kAvx512);
  return v;
}

// Limits the kernels to `isa` for the guard's lifetime.
struct IsaGuard {
  explicit IsaGuard(cpu::Isa isa) { cpu::set_isa_limit(isa); }
  ~IsaGuard() { cpu::set_isa_limit(cpu::Isa::kAvx512); }
};

// Sets at::set_num_threads(n) for the guard's lifetime.
struct ThreadGuard {
  explicit ThreadGuard(int n) : saved(at::get_num_threads()) { at::set_num_threads(n); }
  ~ThreadGuard() { at::set_num_threads(saved); }
  int saved;
};

}  // namespace qgnn::testing
