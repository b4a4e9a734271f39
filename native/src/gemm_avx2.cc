// AVX2/FMA sgemm kernels: 6x16 register tile (12 ymm accumulators); packing and GEMV are the
// generic loops compiled for AVX2.
#include "common.h"
#include "gemm_generic.h"

#if CHIMERA_X86
#include <immintrin.h>

#include <array>
#include <utility>

#define T256 CHIMERA_TARGET_AVX2

namespace chimera {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;

T256 void pack_a(const GemmProblem& p, int64_t i0, int mr, int64_t p0, int64_t kc, float* dst) { generic::pack_a(p, i0, mr, p0, kc, dst); }
T256 void pack_b(const GemmProblem& p, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) { generic::pack_b<NR>(p, p0, kc, j0, nc, dst); }

// C[0:R, 0:nr] <- acc per mode (acc[2r + v] holds row r, columns 8v..8v+7).
template <int R>
T256 inline __attribute__((always_inline)) void store_tile(const __m256* acc, float* c, int64_t ldc, int nr, int mode, const float* beta) {
  if (nr == NR) {
    const __m256 vb = _mm256_set1_ps(*beta);
    for (int r = 0; r < R; r++) {
      float* cr = c + r * ldc;
      for (int v = 0; v < 2; v++) {
        __m256 x = acc[2 * r + v];
        if (mode == kAccum) x = _mm256_add_ps(x, _mm256_loadu_ps(cr + 8 * v));
        else if (mode == kScaleAdd) x = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8 * v), x);
        _mm256_storeu_ps(cr + 8 * v, x);
      }
    }
    return;
  }
  alignas(32) float t[NR];
  for (int r = 0; r < R; r++) {
    float* cr = c + r * ldc;
    _mm256_store_ps(t, acc[2 * r]);
    _mm256_store_ps(t + 8, acc[2 * r + 1]);
    for (int j = 0; j < nr; j++) {
      float x = t[j];
      if (mode == kAccum) x += cr[j];
      else if (mode == kScaleAdd) x += *beta * cr[j];
      cr[j] = x;
    }
  }
}

template <int R>
T256 void micro_r(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, int nr, int mode, const float* beta) {
  __m256 acc[2 * R];
#pragma GCC unroll 16
  for (int i = 0; i < 2 * R; i++) acc[i] = _mm256_setzero_ps();
  for (int r = 0; r < R; r++) _mm_prefetch((const char*)(c + r * ldc), _MM_HINT_T0);
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
    _mm_prefetch((const char*)(bp + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      __m256 a = _mm256_set1_ps(ap[r]);
      acc[2 * r] = _mm256_fmadd_ps(a, b0, acc[2 * r]);
      acc[2 * r + 1] = _mm256_fmadd_ps(a, b1, acc[2 * r + 1]);
    }
    ap += R;
    bp += NR;
  }
  store_tile<R>(acc, c, ldc, nr, mode, beta);
}

using MicroFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, int, const float*);
template <int... Rs>
constexpr auto micro_table(std::integer_sequence<int, Rs...>) {
  return std::array<MicroFn, sizeof...(Rs)>{&micro_r<Rs + 1>...};
}
const auto kMicro = micro_table(std::make_integer_sequence<int, MR>{});

void micro(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr, int nr, int mode, const float* beta) {
  kMicro[mr - 1](kc, ap, bp, c, ldc, nr, mode, beta);
}

T256 void gemv_axpy(int64_t k, const float* x, const float* m, int64_t ldm, int64_t j0, int64_t j1, float alpha, float beta, float* y) {
  generic::gemv_axpy(k, x, m, ldm, j0, j1, alpha, beta, y);
}
T256 void gemv_dot(int64_t k, const float* x, const float* m, int64_t ldm, int64_t i0, int64_t i1, float alpha, float beta, float* y) {
  generic::gemv_dot(k, x, m, ldm, i0, i1, alpha, beta, y);
}

}  // namespace

const GemmKernels kGemmAvx2 = {"avx2", MR, NR, 256, 256, pack_a, pack_b, micro, gemv_axpy, gemv_dot, nullptr};

}  // namespace chimera

#endif  // CHIMERA_X86
