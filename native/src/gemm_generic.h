// Portable sgemm building blocks (plain loops). gemm_scalar.cc uses them as they are; other ISA files
// wrap them in target-attributed functions so the compiler vectorizes them for that ISA.
#pragma once
#include "gemm.h"

#define CHIMERA_INL inline __attribute__((always_inline))

namespace chimera {
namespace generic {

CHIMERA_INL float a_at(const GemmProblem& p, int64_t i, int64_t k) { return p.ta ? p.a[k * p.lda + i] : p.a[i * p.lda + k]; }
CHIMERA_INL float b_at(const GemmProblem& p, int64_t k, int64_t j) { return p.tb ? p.b[j * p.ldb + k] : p.b[k * p.ldb + j]; }

// Layouts as documented on GemmKernels.
CHIMERA_INL void pack_a(const GemmProblem& p, int64_t i0, int mr, int64_t p0, int64_t kc, float* dst) {
  const float alpha = p.alpha;
  if (p.ta) {
    for (int64_t k = 0; k < kc; k++) {
      const float* s = p.a + (p0 + k) * p.lda + i0;
      for (int r = 0; r < mr; r++) dst[k * mr + r] = alpha * s[r];
    }
  } else {
    for (int r = 0; r < mr; r++) {
      const float* s = p.a + (i0 + r) * p.lda + p0;
      for (int64_t k = 0; k < kc; k++) dst[k * mr + r] = alpha * s[k];
    }
  }
}

template <int NR>
CHIMERA_INL void pack_b(const GemmProblem& p, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  if (!p.tb) {
    // Whole row pieces (sequential reads), scattered to the panels.
    for (int64_t k = 0; k < kc; k++) {
      const float* s = p.b + (p0 + k) * p.ldb + j0;
      float* d = dst + k * NR;
      for (int64_t jp = 0; jp < nc; jp += NR, d += kc * NR) {
        const int64_t nr = nc - jp < NR ? nc - jp : NR;
        if (nr == NR) {
          for (int jj = 0; jj < NR; jj++) d[jj] = s[jp + jj];
        } else {
          for (int jj = 0; jj < NR; jj++) d[jj] = jj < nr ? s[jp + jj] : 0.0f;
        }
      }
    }
    return;
  }
  for (int64_t jp = 0; jp < nc; jp += NR, dst += kc * NR) {
    const int64_t nr = nc - jp < NR ? nc - jp : NR;
    for (int64_t jj = 0; jj < NR; jj++) {
      if (jj < nr) {
        const float* s = p.b + (j0 + jp + jj) * p.ldb + p0;
        for (int64_t k = 0; k < kc; k++) dst[k * NR + jj] = s[k];
      } else {
        for (int64_t k = 0; k < kc; k++) dst[k * NR + jj] = 0.0f;
      }
    }
  }
}

// Register tile of at most MR x NR; mr is the runtime row count of the packed A panel.
template <int MR, int NR>
CHIMERA_INL void micro(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, int mr, int nr, int mode, const float* beta) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; k++) {
    const float* b = bp + k * NR;
    for (int r = 0; r < MR; r++) {
      if (r >= mr) break;
      float a = ap[k * mr + r];
      for (int j = 0; j < NR; j++) acc[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < mr; r++) {
    float* cr = c + r * ldc;
    for (int j = 0; j < nr; j++) {
      float x = acc[r][j];
      if (mode == kAccum) x += cr[j];
      else if (mode == kScaleAdd) x += *beta * cr[j];
      cr[j] = x;
    }
  }
}

CHIMERA_INL void gemv_axpy(int64_t k, const float* x, const float* mat, int64_t ldm, int64_t j0, int64_t j1, float alpha, float beta, float* y) {
  constexpr int64_t CW = 512;
  float acc[CW];
  for (int64_t jc = j0; jc < j1; jc += CW) {
    int64_t w = j1 - jc < CW ? j1 - jc : CW;
    for (int64_t j = 0; j < w; j++) acc[j] = 0.0f;
    for (int64_t kk = 0; kk < k; kk++) {
      const float* m = mat + kk * ldm + jc;
      float xv = x[kk];
      for (int64_t j = 0; j < w; j++) acc[j] += xv * m[j];
    }
    for (int64_t j = 0; j < w; j++) y[jc + j] = beta != 0.0f ? alpha * acc[j] + beta * y[jc + j] : alpha * acc[j];
  }
}

CHIMERA_INL void gemv_dot(int64_t k, const float* x, const float* mat, int64_t ldm, int64_t i0, int64_t i1, float alpha, float beta, float* y) {
  for (int64_t i = i0; i < i1; i++) {
    const float* r = mat + i * ldm;
    float s[8] = {};
    int64_t kk = 0;
    for (; kk + 8 <= k; kk += 8)
      for (int u = 0; u < 8; u++) s[u] += r[kk + u] * x[kk + u];
    for (; kk < k; kk++) s[0] += r[kk] * x[kk];
    float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    y[i] = beta != 0.0f ? alpha * t + beta * y[i] : alpha * t;
  }
}

}  // namespace generic
}  // namespace chimera
