// The SIMD kernels of kernels_isa.h built for AVX2 + FMA.
// Standard headers come before the target pragma so that none of their inline code is
// compiled for this instruction set (it could be picked by the linker for the other builds).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace chimera {
namespace kern {
namespace isa_avx2 {

static constexpr const char* kIsaName = "avx2";
#include "kernels_vec_avx2.h"
#include "kernels_isa.h"

}  // namespace isa_avx2

const KernelTable& table_avx2() { return isa_avx2::kTable; }

}  // namespace kern
}  // namespace chimera

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86: this instruction set does not exist; the dispatcher never selects it.

namespace chimera {
namespace kern {
const KernelTable& table_avx2() { return table_scalar(); }
}  // namespace kern
}  // namespace chimera

#endif
