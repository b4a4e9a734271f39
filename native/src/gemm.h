// Internal interface of the sgemm implementation (gemm.cc drives; gemm_<isa>.cc supply kernels).
#pragma once
#include <cstdint>

namespace chimera {

// One (non-batched) row-major problem: C = alpha * op(A) @ op(B) + beta * C, op(A) [m, k], op(B) [k, n].
// A is [m, k] (or [k, m] when ta) with row stride lda; B is [k, n] (or [n, k] when tb) with row stride ldb.
struct GemmProblem {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
  const float* a; int64_t lda;
  const float* b; int64_t ldb;
  float* c; int64_t ldc;
};

// How the micro-kernel combines its result with C.
enum GemmMode : int {
  kStore = 0,     // C = acc
  kScaleAdd = 1,  // C = acc + beta * C
  kAccum = 2,     // C += acc
};

// The kernels one ISA provides. Packed layouts:
//   A panel: rows [i0, i0+mr) x k [p0, p0+kc) of op(A), times alpha, as [kc][mr] (mr <= MR).
//   B block: k [p0, p0+kc) x cols [j0, j0+nc) of op(B) as ceil(nc/NR) panels of [kc][NR], zero padded.
struct GemmKernels {
  const char* name;
  int MR, NR;   // register tile
  int KC, NC;   // cache blocks: A micro-panel MR x KC in L1, B block KC x NC in L2
  void (*pack_a)(const GemmProblem& p, int64_t i0, int mr, int64_t p0, int64_t kc, float* dst);
  void (*pack_b)(const GemmProblem& p, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst);
  // C[0:mr, 0:nr] (row stride ldc) <- packed A panel [kc][mr] x packed B panel [kc][NR] per mode.
  // beta comes by pointer so it does not hold a vector register across the k loop.
  void (*micro)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr, int nr, int mode, const float* beta);
  // y[j] = alpha * sum_k x[k] * M[k, j] + beta * y[j] for j in [j0, j1); M rows of stride ldm (beta 0: y ignored).
  void (*gemv_axpy)(int64_t k, const float* x, const float* mat, int64_t ldm, int64_t j0, int64_t j1, float alpha, float beta, float* y);
  // y[i] = alpha * dot(M[i, 0:k], x) + beta * y[i] for i in [i0, i1) (beta 0: y ignored).
  void (*gemv_dot)(int64_t k, const float* x, const float* mat, int64_t ldm, int64_t i0, int64_t i1, float alpha, float beta, float* y);
  // Optional (may be null): a whole small problem on one thread without packing A; scratch holds
  // k x round_up(n, NR) floats when tb, else k x NR.
  void (*small)(const GemmProblem& p, float* scratch);
};

// Batched sgemm on the active ISA with the pool's threads: problem i uses a + i*strideA,
// b + i*strideB, c + i*strideC (strides >= 0; 0 reuses an operand). Arguments must already be
// valid (the binding checks them). Usable by other kernels (e.g. convolution via im2col).
void sgemm_batched(const GemmProblem& p, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch);
inline void sgemm(const GemmProblem& p) { sgemm_batched(p, 0, 0, 0, 1); }

struct GemmKernels;
// The same with an explicit kernel set (benchmarks and tests).
void sgemm_batched_with(const GemmKernels& K, const GemmProblem& p, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch);

extern const GemmKernels kGemmScalar;
#if defined(__x86_64__) || defined(__i386__)
extern const GemmKernels kGemmAvx2;
extern const GemmKernels kGemmAvx512;
#endif

}  // namespace chimera
