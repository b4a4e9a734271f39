// The SIMD kernels of kernels_isa.h built for AVX-512 (F/BW/VL/DQ + FMA).
// Standard headers come before the target pragma so that none of their inline code is
// compiled for this instruction set (it could be picked by the linker for the other builds).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC diagnostic push
// GCC 12 reports its own _mm512_undefined_ps() placeholders as uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#endif

namespace chimera {
namespace kern {
namespace isa_avx512 {

static constexpr const char* kIsaName = "avx512";
#include "kernels_vec_avx512.h"
#include "kernels_isa.h"

}  // namespace isa_avx512

const KernelTable& table_avx512() { return isa_avx512::kTable; }

}  // namespace kern
}  // namespace chimera

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#else  // not x86: this instruction set does not exist; the dispatcher never selects it.

namespace chimera {
namespace kern {
const KernelTable& table_avx512() { return table_scalar(); }
}  // namespace kern
}  // namespace chimera

#endif
