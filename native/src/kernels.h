// Internal interface of the elementwise / NN kernels (everything in Backend except gemm).
//
// Layers:
//   kernels_register.cc  N-API bindings: argument checks, ISA choice, splitting work over threads.
//   kernels_isa.h        SIMD kernels written once over a small vector API, compiled three times
//                        (kernels_avx512.cc / kernels_avx2.cc / kernels_scalar.cc) into a KernelTable.
//   kernels_misc.cc      Plain C++ kernels (conv helpers, pooling, resize, indexing, topk, ...).
// Every function here trusts its arguments: bindings validate sizes before calling.
#pragma once

#include <cstdint>

namespace chimera {
namespace kern {

// Same order as UnaryOps in src/engine/backend.ts.
enum Unary : int {
  U_NEG, U_ABS, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SQUARE, U_RECIPROCAL, U_SIN, U_COS,
  U_TANH, U_SIGMOID, U_RELU, U_GELU, U_GELU_TANH, U_QUICK_GELU, U_SILU,
  U_SCALE, U_ADD_SCALAR, U_POW_SCALAR, U_CLAMP, U_SIGN, U_COUNT
};

// Ops whose backward reads y = f(x) (the others read x), as the reference backend defines.
inline bool unary_bwd_reads_y(int op) {
  return op == U_EXP || op == U_SQRT || op == U_RSQRT || op == U_RECIPROCAL || op == U_TANH || op == U_SIGMOID || op == U_RELU;
}

// Same order as BinaryOps in src/engine/backend.ts.
enum Binary : int { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_COUNT };

enum Reduce : int { R_SUM, R_MAX, R_MIN };

constexpr int kMaxRank = 64;

// A strided iteration space after coalescing: `rank` dims (innermost last, rank >= 1), up to
// three operands with element strides st[k][d] from base pointers base[k] (offsets applied).
// The output is dense: element e of the row-major order.
struct Nd {
  int rank;
  int64_t shape[kMaxRank];
  int64_t st[3][kMaxRank];
  const void* base[3];
};

// Fused attention problem (see AttentionArgs in backend.ts). Strides are in elements.
struct Attn {
  const float* q; const float* k; const float* v;
  int64_t B, H, Hkv, Tq, Tk, D, Dv;
  float scale;
  bool causal;
  const uint8_t* mask; int64_t msB, msH, msQ;
  // Backward only.
  const float* out; const float* lse; const float* gout;
  const float* di;  // [B, H, Tq] rowsum(gOut * out)
  float* gk; float* gv;
};

// Tile sizes shared by the attention kernels and the scratch allocation in the bindings.
constexpr int kAttnQB = 64;   // query rows per block (forward work unit; vector lanes hold queries)
constexpr int kAttnKT = 64;   // keys per tile (backward work unit)
// Scratch floats one thread needs for attention forward / backward (layouts in kernels_isa.h).
inline int64_t attn_fwd_scratch(int64_t D, int64_t Dv, int64_t Tk) {
  return D * kAttnQB + (int64_t)kAttnKT * kAttnQB + kAttnQB * Dv + 3 * kAttnQB + Tk + 64;
}
inline int64_t attn_bwd_scratch(int64_t D, int64_t Dv) {
  return (D + Dv) * kAttnQB + 2 * (int64_t)kAttnKT * kAttnQB + kAttnKT * (D + Dv) + 64;
}

// AdamW with the per-step constants folded (in f64) by the binding:
// p = p * decay; m = beta1*m + c1*g; v = beta2*v + c2*g^2; p -= step * m / (sqrt(v * ibc2) + eps).
struct AdamW { float decay, beta1, beta2, c1, c2, step, ibc2, eps; };
struct Sgd { float lr, momentum, dampening, wd; bool nesterov, first; };

// One instruction-set build of the SIMD kernels. Row kernels take pointers already offset to
// their first row; range kernels take [e0, e1) element or unit ranges.
struct KernelTable {
  const char* name;
  void (*unary)(int op, const float* x, float* y, int64_t n, float p0, float p1);
  void (*unary_bwd)(int op, const float* x, const float* y, const float* gy, float* gx, int64_t n, float p0, float p1);
  void (*binary)(int op, const Nd& nd, float* out, int64_t e0, int64_t e1);
  void (*where)(const Nd& nd, float* out, int64_t e0, int64_t e1);
  // out[r] = reduce(x[r, 0..n)) for rows r in [0, rows).
  void (*reduce_rows)(int op, const float* x, float* out, int64_t rows, int64_t n);
  // x [outer, n, inner]: out[o, c] for column blocks; unit u covers outer u / nb, block u % nb
  // of kReduceCols columns (nb = ceil(inner / kReduceCols)).
  void (*reduce_cols)(int op, const float* x, float* out, int64_t n, int64_t inner, int64_t u0, int64_t u1);
  double (*sum_squares)(const float* x, int64_t n);
  void (*softmax)(const float* x, float* y, int64_t rows, int64_t n, bool log);
  void (*softmax_bwd)(const float* y, const float* gy, float* gx, int64_t rows, int64_t n, bool log);
  void (*layernorm)(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows, int64_t n, float eps);
  // gw / gb (either may be null) accumulate over the rows.
  void (*layernorm_bwd)(const float* x, const float* w, const float* mean, const float* rstd, const float* gy, float* gx, float* gw, float* gb, int64_t rows, int64_t n);
  void (*rmsnorm)(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t n, float eps);
  void (*rmsnorm_bwd)(const float* x, const float* w, const float* rstd, const float* gy, float* gx, float* gw, int64_t rows, int64_t n);
  // Rows [r0, r1) of x [N*T, D]; row r uses position r % T.
  void (*rope)(const float* x, float* y, const float* cos, const float* sin, int64_t r0, int64_t r1, int64_t T, int64_t D, int64_t rot, bool interleaved, bool inverse);
  // Units u = (b*H + h) * ceil(Tq / kAttnQB) + query block.
  void (*attn_fwd)(const Attn& a, float* out, float* lse, int64_t u0, int64_t u1, float* scratch);
  // Units u = (b*Hkv + g) * ceil(Tk / kAttnKT) + key block; writes gk/gv rows of its keys,
  // accumulates dq (same layout as q) for the query heads of its group.
  void (*attn_bwd)(const Attn& a, float* dq, int64_t u0, int64_t u1, float* scratch);
  // out[r] = sum_i a[r, i] * b[r, i] (f32) for rows [0, rows).
  void (*rowdot)(const float* a, const float* b, float* out, int64_t rows, int64_t n);
  // Rows of logits [rows, V]; targets already validated.
  void (*ce_fwd)(const float* logits, const int32_t* targets, float* loss, float* lse, int64_t rows, int64_t V, int32_t ignore, float smoothing);
  void (*ce_bwd)(const float* logits, const int32_t* targets, const float* lse, const float* gloss, float* glogits, int64_t rows, int64_t V, int32_t ignore, float smoothing);
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, const AdamW& h);
  void (*sgd)(float* p, const float* g, float* buf, int64_t n, const Sgd& h);
  // y[i] += x[i].
  void (*acc)(float* y, const float* x, int64_t n);
};

constexpr int64_t kReduceCols = 64;

const KernelTable& table_avx512();
const KernelTable& table_avx2();
const KernelTable& table_scalar();

// ---------------------------------------------------------------- plain kernels (kernels_misc.cc)

// Copies an iteration space of elements of `esize` bytes (1, 2, 4 or 8) to dense dst, elements [e0, e1).
void copy_strided(const Nd& nd, int esize, void* dst, int64_t e0, int64_t e1);

struct Conv {
  int64_t C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo;
};
void im2col(const float* x, const Conv& g, float* cols, int64_t c0, int64_t c1);
void col2im(const float* cols, const Conv& g, float* gx, int64_t c0, int64_t c1);
// Planes p in [p0, p1) of N*C.
void dwconv(const float* x, const float* w, const float* bias, float* y, const Conv& g, int64_t p0, int64_t p1);
void dwconv_bwd_x(const float* w, const float* gy, float* gx, const Conv& g, int64_t p0, int64_t p1);
// gw[c] += over all N images, channels c in [c0, c1).
void dwconv_bwd_w(const float* x, const float* gy, float* gw, const Conv& g, int64_t N, int64_t c0, int64_t c1);

struct Pool {
  int64_t NC, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo;
  bool includePad;
};
void pool2d(bool max, const float* x, float* y, int32_t* argmax, const Pool& g, int64_t p0, int64_t p1);
void pool2d_bwd(bool max, const float* gy, const int32_t* argmax, float* gx, const Pool& g, int64_t p0, int64_t p1);

struct Interp {
  int64_t NC, H, W, Ho, Wo;
  int mode;  // 0 nearest, 1 bilinear, 2 bicubic
  bool alignCorners;
  double scaleH, scaleW;  // 0 = derive from sizes
};
void interpolate(const float* x, float* y, const Interp& g, int64_t p0, int64_t p1);
void interpolate_bwd(const float* gy, float* gx, const Interp& g, int64_t p0, int64_t p1);

void argreduce(bool argmax, const float* x, int32_t* out, int64_t outer, int64_t n, int64_t inner, int64_t o0, int64_t o1);
void cumsum(const float* x, float* y, int64_t n, int64_t inner, bool reverse, int64_t o0, int64_t o1);
// Rows [r0, r1); scratch holds n int32 per call.
void topk(const float* x, int64_t n, int64_t k, float* values, int32_t* indices, int64_t r0, int64_t r1, int32_t* scratch);

// Indices are validated by the bindings. Row kernels take units u = o * m + i in [u0, u1);
// accumulating kernels take an outer range [o0, o1) and a column range [c0, c1) of inner, so
// that threads can split either without touching the same gx element.
// y [outer, m, inner] = x [outer, n, inner] rows picked by idx [m].
void index_select(const float* x, const int32_t* idx, float* y, int64_t m, int64_t n, int64_t inner, int64_t u0, int64_t u1);
// gx [outer, n, inner] += gy [outer, m, inner] scattered by idx [m].
void index_add(const float* gy, const int32_t* idx, float* gx, int64_t m, int64_t n, int64_t inner, int64_t o0, int64_t o1, int64_t c0, int64_t c1);
// y [outer, m, inner] = x[o, idx[o, i, c], c].
void gather(const float* x, const int32_t* idx, float* y, int64_t n, int64_t m, int64_t inner, int64_t u0, int64_t u1);
// gx[o, idx[o, i, c], c] += gy[o, i, c].
void scatter_add(const float* gy, const int32_t* idx, float* gx, int64_t n, int64_t m, int64_t inner, int64_t o0, int64_t o1, int64_t c0, int64_t c1);

}  // namespace kern
}  // namespace chimera
