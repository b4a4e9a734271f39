// Portable sgemm kernels (no ISA extensions beyond the build's baseline).
#include "gemm_generic.h"

namespace chimera {
namespace {

constexpr int MR = 4, NR = 8;

void pack_a(const GemmProblem& p, int64_t i0, int mr, int64_t p0, int64_t kc, float* dst) { generic::pack_a(p, i0, mr, p0, kc, dst); }
void pack_b(const GemmProblem& p, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) { generic::pack_b<NR>(p, p0, kc, j0, nc, dst); }
void micro(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr, int nr, int mode, const float* beta) {
  generic::micro<MR, NR>(kc, ap, bp, c, ldc, mr, nr, mode, beta);
}
void gemv_axpy(int64_t k, const float* x, const float* m, int64_t ldm, int64_t j0, int64_t j1, float alpha, float beta, float* y) {
  generic::gemv_axpy(k, x, m, ldm, j0, j1, alpha, beta, y);
}
void gemv_dot(int64_t k, const float* x, const float* m, int64_t ldm, int64_t i0, int64_t i1, float alpha, float beta, float* y) {
  generic::gemv_dot(k, x, m, ldm, i0, i1, alpha, beta, y);
}

}  // namespace

const GemmKernels kGemmScalar = {"scalar", MR, NR, 256, 512, pack_a, pack_b, micro, gemv_axpy, gemv_dot, nullptr};

}  // namespace chimera
