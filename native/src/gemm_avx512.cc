// AVX-512 sgemm kernels: 12x32 register tile (24 zmm accumulators), packing with in-register
// 16x16 transposes, and bandwidth-oriented GEMV loops. Compiled with function-level targets only.
#include "common.h"
#include "gemm.h"

#if CHIMERA_X86
#include <immintrin.h>

#include <array>
#include <utility>

#define T512 CHIMERA_TARGET_AVX512
#define INL inline __attribute__((always_inline))

namespace chimera {
namespace {

constexpr int MR = 12;  // rows of the register tile (12 x 2 zmm accumulators)
constexpr int NV = 2;   // zmm vectors per row
constexpr int NR = 16 * NV;
constexpr int KC = 512;  // A micro-panel 12 x 512 (24 KiB) stays in L1 (48 KiB)
constexpr int NC = 512;  // B block 512 x 512 (1 MiB) stays in L2 (2 MiB)

T512 INL __mmask16 tail_mask(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

// In place: r[j] lane i <- r[i] lane j.
T512 INL void transpose16(__m512 r[16]) {
  __m512 a[16], b[16];
  for (int i = 0; i < 8; i++) {
    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
    __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
    b[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  // b[4i + c] lane L holds column 4L + c of rows 4i..4i+3: transpose the 4x4 grid of 128-bit lanes.
  for (int c = 0; c < 4; c++) {
    __m512 s0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x44);
    __m512 s1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xEE);
    __m512 s2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x44);
    __m512 s3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xEE);
    r[c] = _mm512_shuffle_f32x4(s0, s2, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
    r[8 + c] = _mm512_shuffle_f32x4(s1, s3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
  }
}

// ---------------------------------------------------------------- packing

T512 void pack_a(const GemmProblem& p, int64_t i0, int mr, int64_t p0, int64_t kc, float* dst) {
  const __m512 alpha = _mm512_set1_ps(p.alpha);
  const __mmask16 rows = tail_mask(mr);
  if (p.ta) {
    // A stored [k, m]: each k gives mr contiguous values.
    const float* src = p.a + p0 * p.lda + i0;
    for (int64_t k = 0; k < kc; k++) {
      __m512 v = _mm512_maskz_loadu_ps(rows, src + k * p.lda);
      _mm512_mask_storeu_ps(dst + k * mr, rows, _mm512_mul_ps(v, alpha));
    }
    return;
  }
  // A stored [m, k]: transpose 16-wide k strips of mr rows.
  const float* src = p.a + i0 * p.lda + p0;
  for (int64_t kb = 0; kb < kc; kb += 16) {
    int64_t kn = kc - kb < 16 ? kc - kb : 16;
    __mmask16 km = tail_mask(kn);
    __m512 r[16];
    for (int i = 0; i < 16; i++)
      r[i] = i < mr ? _mm512_maskz_loadu_ps(km, src + i * p.lda + kb) : _mm512_setzero_ps();
    transpose16(r);
    for (int64_t kk = 0; kk < kn; kk++) _mm512_mask_storeu_ps(dst + (kb + kk) * mr, rows, _mm512_mul_ps(r[kk], alpha));
  }
}

T512 void pack_b(const GemmProblem& p, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  if (!p.tb) {
    // B stored [k, n]: walk whole row pieces (sequential reads) and scatter them to the panels.
    const int64_t full = nc / NR * NR;
    const int64_t rem = nc - full;
    for (int64_t k = 0; k < kc; k++) {
      const float* s = p.b + (p0 + k) * p.ldb + j0;
      float* d = dst + k * NR;
      int64_t jp = 0;
      for (; jp < full; jp += NR, d += kc * NR)
        for (int v = 0; v < NV; v++) _mm512_store_ps(d + 16 * v, _mm512_loadu_ps(s + jp + 16 * v));
      if (rem)
        for (int v = 0; v < NV; v++)
          _mm512_store_ps(d + 16 * v, _mm512_maskz_loadu_ps(tail_mask(rem - 16 * v > 0 ? rem - 16 * v : 0), s + jp + 16 * v));
    }
    return;
  }
  // B stored [n, k]: transpose 16 columns x 16 k at a time (16 sequential row streams).
  for (int64_t jp = 0; jp < nc; jp += NR, dst += kc * NR) {
    int64_t nr = nc - jp < NR ? nc - jp : NR;
    for (int v = 0; v < NV; v++) {
      int64_t nv = nr - 16 * v;
      if (nv <= 0) {
        for (int64_t k = 0; k < kc; k++) _mm512_store_ps(dst + k * NR + 16 * v, _mm512_setzero_ps());
        continue;
      }
      const float* src = p.b + (j0 + jp + 16 * v) * p.ldb + p0;
      for (int64_t kb = 0; kb < kc; kb += 16) {
        int64_t kn = kc - kb < 16 ? kc - kb : 16;
        __mmask16 km = tail_mask(kn);
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < nv ? _mm512_maskz_loadu_ps(km, src + i * p.ldb + kb) : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t kk = 0; kk < kn; kk++) _mm512_store_ps(dst + (kb + kk) * NR + 16 * v, r[kk]);
      }
    }
  }
}

// ---------------------------------------------------------------- micro-kernel

// C[0:R, 0:nr] <- alpha * acc per mode (acc[r * V + v] holds row r, columns 16v..16v+15).
template <int R, int V = NV>
T512 INL void store_tile(const __m512* acc, float* c, int64_t ldc, int nr, int mode, const float* beta, float alpha = 1.0f) {
  const __m512 vb = _mm512_set1_ps(*beta), va = _mm512_set1_ps(alpha);
  __mmask16 m[V];
  for (int v = 0; v < V; v++) m[v] = tail_mask(nr - 16 * v > 0 ? nr - 16 * v : 0);
  const bool full = nr == 16 * V;
  for (int r = 0; r < R; r++) {
    float* cr = c + r * ldc;
    for (int v = 0; v < V; v++) {
      __m512 x = alpha == 1.0f ? acc[r * V + v] : _mm512_mul_ps(va, acc[r * V + v]);
      if (full) {
        if (mode == kAccum) x = _mm512_add_ps(x, _mm512_loadu_ps(cr + 16 * v));
        else if (mode == kScaleAdd) x = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr + 16 * v), x);
        _mm512_storeu_ps(cr + 16 * v, x);
      } else {
        if (mode == kAccum) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m[v], cr + 16 * v));
        else if (mode == kScaleAdd) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[v], cr + 16 * v), x);
        _mm512_mask_storeu_ps(cr + 16 * v, m[v], x);
      }
    }
  }
}

// Pull the C tile towards L1 while the k loop runs.
T512 INL void prefetch_c(int rows, const float* c, int64_t ldc) {
  for (int r = 0; r < rows; r++) {
    _mm_prefetch((const char*)(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + r * ldc + NR - 1), _MM_HINT_T0);
  }
}

template <int R>
T512 void micro_r(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, int nr, int mode, const float* beta) {
  __m512 acc[R * NV];
#pragma GCC unroll 32
  for (int i = 0; i < R * NV; i++) acc[i] = _mm512_setzero_ps();
  prefetch_c(R, c, ldc);
  for (int64_t k = 0; k < kc; k++) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = _mm512_load_ps(bp + 16 * v);
    _mm_prefetch((const char*)(bp + 8 * NR), _MM_HINT_T0);
    _mm_prefetch((const char*)(bp + 8 * NR + 16), _MM_HINT_T0);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      __m512 a = _mm512_set1_ps(ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r * NV + v] = _mm512_fmadd_ps(a, b[v], acc[r * NV + v]);
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

// ---------------------------------------------------------------- small problems

// Unpacked tile for small problems (no A packing): element (r, k) of op(A) is a[r * lda + k]
// (TA: a[k * lda + r]); B row k is the NR floats at b + k * ldb (nr of them used).
template <int R, bool TA, int V>
T512 void direct_r(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int nr, int mode, const float* beta, float alpha) {
  __m512 acc[R * V];
#pragma GCC unroll 32
  for (int i = 0; i < R * V; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m512 bv[V];
#pragma GCC unroll 2
    for (int v = 0; v < V; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      const __m512 av = _mm512_set1_ps(TA ? a[k * lda + r] : a[r * lda + k]);
#pragma GCC unroll 2
      for (int v = 0; v < V; v++) acc[r * V + v] = _mm512_fmadd_ps(av, bv[v], acc[r * V + v]);
    }
    b += ldb;
  }
  store_tile<R, V>(acc, c, ldc, nr, mode, beta, alpha);
}

using DirectFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int, int, const float*, float);
template <bool TA, int V, int... Rs>
constexpr auto direct_table(std::integer_sequence<int, Rs...>) {
  return std::array<DirectFn, sizeof...(Rs)>{&direct_r<Rs + 1, TA, V>...};
}
// [TA][one zmm per row]
const std::array<DirectFn, MR> kDirect[2][2] = {
    {direct_table<false, 2>(std::make_integer_sequence<int, MR>{}), direct_table<false, 1>(std::make_integer_sequence<int, MR>{})},
    {direct_table<true, 2>(std::make_integer_sequence<int, MR>{}), direct_table<true, 1>(std::make_integer_sequence<int, MR>{})},
};

// The whole problem on this thread without packing A. Full NR-column blocks of B are read in
// place; the ragged last block (or all of B when tb) is packed into scratch
// (k x round_up(n, NR) floats) so the kernel never reads past a row.
void small(const GemmProblem& p, float* scratch) {
  const int64_t full = p.tb ? 0 : p.n / NR * NR;
  if (full < p.n) pack_b(p, 0, p.k, full, p.n - full, scratch);
  const int mode = p.beta == 0.0f ? kStore : p.beta == 1.0f ? kAccum : kScaleAdd;
  for (int64_t i0 = 0; i0 < p.m; i0 += MR) {
    const int r = (int)(p.m - i0 < MR ? p.m - i0 : MR);
    const float* a = p.ta ? p.a + i0 : p.a + i0 * p.lda;
    for (int64_t j0 = 0; j0 < p.n; j0 += NR) {
      const int nr = (int)(p.n - j0 < NR ? p.n - j0 : NR);
      const bool raw = j0 < full;
      const float* bj = raw ? p.b + j0 : scratch + (j0 - full) * p.k;
      kDirect[p.ta][nr <= 16][r - 1](p.k, a, p.lda, bj, raw ? p.ldb : NR, p.c + i0 * p.ldc + j0, p.ldc, nr, mode, &p.beta, p.alpha);
    }
  }
}

// ---------------------------------------------------------------- GEMV

T512 void gemv_axpy(int64_t k, const float* x, const float* mat, int64_t ldm, int64_t j0, int64_t j1, float alpha, float beta, float* y) {
  constexpr int64_t CW = 4096;  // columns per pass: the partial sums stay in L1
  alignas(64) float acc[CW];
  for (int64_t jc = j0; jc < j1; jc += CW) {
    int64_t w = j1 - jc < CW ? j1 - jc : CW;
    for (int64_t j = 0; j < w; j += 16) _mm512_store_ps(acc + j, _mm512_setzero_ps());
    int64_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
      const float* m0 = mat + kk * ldm + jc;
      __m512 xv[8];
      for (int u = 0; u < 8; u++) xv[u] = _mm512_set1_ps(x[kk + u]);
      for (int64_t j = 0; j < w; j += 16) {
        __mmask16 mk = tail_mask(w - j);
        __m512 s0 = _mm512_load_ps(acc + j);
        __m512 s1 = _mm512_mul_ps(xv[1], _mm512_maskz_loadu_ps(mk, m0 + ldm + j));
        s0 = _mm512_fmadd_ps(xv[0], _mm512_maskz_loadu_ps(mk, m0 + j), s0);
        s1 = _mm512_fmadd_ps(xv[3], _mm512_maskz_loadu_ps(mk, m0 + 3 * ldm + j), s1);
        s0 = _mm512_fmadd_ps(xv[2], _mm512_maskz_loadu_ps(mk, m0 + 2 * ldm + j), s0);
        s1 = _mm512_fmadd_ps(xv[5], _mm512_maskz_loadu_ps(mk, m0 + 5 * ldm + j), s1);
        s0 = _mm512_fmadd_ps(xv[4], _mm512_maskz_loadu_ps(mk, m0 + 4 * ldm + j), s0);
        s1 = _mm512_fmadd_ps(xv[7], _mm512_maskz_loadu_ps(mk, m0 + 7 * ldm + j), s1);
        s0 = _mm512_fmadd_ps(xv[6], _mm512_maskz_loadu_ps(mk, m0 + 6 * ldm + j), s0);
        _mm512_store_ps(acc + j, _mm512_add_ps(s0, s1));
      }
    }
    for (; kk < k; kk++) {
      const float* m0 = mat + kk * ldm + jc;
      __m512 x0 = _mm512_set1_ps(x[kk]);
      for (int64_t j = 0; j < w; j += 16) {
        __mmask16 mk = tail_mask(w - j);
        _mm512_store_ps(acc + j, _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(mk, m0 + j), _mm512_load_ps(acc + j)));
      }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t j = 0; j < w; j += 16) {
      __mmask16 mk = tail_mask(w - j);
      __m512 r = _mm512_mul_ps(va, _mm512_load_ps(acc + j));
      if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, y + jc + j), r);
      _mm512_mask_storeu_ps(y + jc + j, mk, r);
    }
  }
}

T512 INL float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

T512 void gemv_dot(int64_t k, const float* x, const float* mat, int64_t ldm, int64_t i0, int64_t i1, float alpha, float beta, float* y) {
  int64_t i = i0;
  auto finish = [&](int64_t row, float s) { y[row] = beta != 0.0f ? alpha * s + beta * y[row] : alpha * s; };
  for (; i + 4 <= i1; i += 4) {
    const float* r0 = mat + i * ldm;
    const float* r1 = r0 + ldm;
    const float* r2 = r1 + ldm;
    const float* r3 = r2 + ldm;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t kk = 0;
    for (; kk + 16 <= k; kk += 16) {
      __m512 xv = _mm512_loadu_ps(x + kk);
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(r0 + kk), xv, s0);
      s1 = _mm512_fmadd_ps(_mm512_loadu_ps(r1 + kk), xv, s1);
      s2 = _mm512_fmadd_ps(_mm512_loadu_ps(r2 + kk), xv, s2);
      s3 = _mm512_fmadd_ps(_mm512_loadu_ps(r3 + kk), xv, s3);
    }
    if (kk < k) {
      __mmask16 mk = tail_mask(k - kk);
      __m512 xv = _mm512_maskz_loadu_ps(mk, x + kk);
      s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, r0 + kk), xv, s0);
      s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, r1 + kk), xv, s1);
      s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, r2 + kk), xv, s2);
      s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, r3 + kk), xv, s3);
    }
    finish(i, hsum(s0));
    finish(i + 1, hsum(s1));
    finish(i + 2, hsum(s2));
    finish(i + 3, hsum(s3));
  }
  for (; i < i1; i++) {
    const float* r0 = mat + i * ldm;
    __m512 s0 = _mm512_setzero_ps();
    for (int64_t kk = 0; kk < k; kk += 16) {
      __mmask16 mk = tail_mask(k - kk);
      s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, r0 + kk), _mm512_maskz_loadu_ps(mk, x + kk), s0);
    }
    finish(i, hsum(s0));
  }
}

}  // namespace

const GemmKernels kGemmAvx512 = {"avx512", MR, NR, KC, NC, pack_a, pack_b, micro, gemv_axpy, gemv_dot, small};

}  // namespace chimera

#endif  // CHIMERA_X86
