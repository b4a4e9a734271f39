// N-API bindings of every Backend kernel except gemm: argument checks (mirroring the reference
// backend's, so both reject the same calls), the ISA choice and the split over threads.
// The JS-side signatures are declared in src/backends/native/kernels.ts (NativeKernelAddon).
// Each typed-array argument costs an N-API call (~0.1 us), so scalars, shapes, strides and
// geometries of most kernels are passed through the params block instead (see below).
#include <algorithm>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "threadpool.h"

using namespace chimera;
using namespace chimera::kern;

namespace chimera {
template <> struct TypedArrayKind<double> { static constexpr napi_typedarray_type type = napi_float64_array; static constexpr const char* name = "Float64Array"; };
}  // namespace chimera

namespace {

// ================================================================ helpers

const KernelTable& kt() {
  switch (isa()) {
    case Isa::Avx512: return table_avx512();
    case Isa::Avx2: return table_avx2();
    default: return table_scalar();
  }
}

// Typed array argument: one N-API call on the fast path, common.h's checked getter for the message.
template <typename T>
Span<T> arr(Call& c, size_t i, const char* what) {
  if (i < c.argc()) {
    napi_typedarray_type ty;
    size_t len = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(c.env, c.arg(i, what), &ty, &len, &data, nullptr, nullptr) == napi_ok &&
        ty == TypedArrayKind<T>::type) {
      static T dummy{};
      return Span<T>{data ? (T*)data : &dummy, (int64_t)len};
    }
  }
  return c.typed<T>(c.arg(i, what), what, false);
}

template <typename T>
Span<T> arr_or_null(Call& c, size_t i, const char* what) {
  if (i >= c.argc()) return {};
  napi_valuetype t = c.type_of(c.arg(i, what));
  if (t == napi_null || t == napi_undefined) return {};
  return arr<T>(c, i, what);
}

double num(Call& c, size_t i, const char* what) {
  double d;
  if (i < c.argc() && napi_get_value_double(c.env, c.arg(i, what), &d) == napi_ok) return d;
  return c.num(i, what);
}

// Non-negative integer (a size).
int64_t dim(Call& c, size_t i, const char* what) {
  double d = num(c, i, what);
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) c.fail("%s must be a non-negative integer, got %g", what, d);
  return (int64_t)d;
}

bool flag(Call& c, size_t i, const char* what) {
  bool b;
  if (i < c.argc() && napi_get_value_bool(c.env, c.arg(i, what), &b) == napi_ok) return b;
  return c.boolean(i, what);
}

template <typename T>
void len_eq(Call& c, const Span<T>& s, int64_t n, const char* what) {
  if (s.len != n) c.fail("%s has length %lld, expected %lld", what, (long long)s.len, (long long)n);
}

int64_t as_int(Call& c, double v, const char* what, int64_t lo) {
  if (!(v >= (double)lo) || v != std::floor(v) || v > 9007199254740991.0) c.fail("%s must be an integer >= %lld, got %g", what, (long long)lo, v);
  return (int64_t)v;
}

// ---------------------------------------------------------------- the params block
// Scalars, offsets, shapes and strides of the hot kernels travel through `addon.params`, a
// Float64Array over memory this thread owns (one per JS thread / env), so that they cost no
// N-API call: JS fills params[0..] and then calls the kernel with its typed arrays only.
constexpr int64_t kParams = 8 + 4 * kMaxRank;
thread_local double tl_params[kParams];
thread_local double* tl_P = tl_params;  // V8-owned block instead where external buffers are not allowed

// The first n params (the caller filled them); n is bounded by the fixed block size.
inline const double* params(Call& c, int64_t n) {
  if (n > kParams) c.fail("needs %lld params, the block holds %lld", (long long)n, (long long)kParams);
  return tl_P;
}

// Runs fn(b, e) over [0, n) split into at most get_threads() chunks of at least min_per items
// (multiples of align), inline when one chunk suffices.
template <class Fn>
void split(int64_t n, int64_t min_per, int64_t align, const Fn& fn) {
  if (n <= 0) return;
  const int nt = get_threads();
  if (nt > 1 && n >= 2 * min_per) {
    const int64_t parts = std::min<int64_t>(nt, n / min_per);
    int64_t grain = (n + parts - 1) / parts;
    grain = (grain + align - 1) / align * align;
    parallel_for(n, grain, [&fn](int64_t b, int64_t e) { fn(b, e); });
  } else {
    fn(0, n);
  }
}

// Runs fn(p) for every part p in [0, parts) on the pool's threads. Every part runs even when the
// pool runs the job inline (busy or nested): thread t takes parts t, t + nt, ...
template <class Fn>
void run_parts(int parts, const Fn& fn) {
  if (parts <= 1) {
    if (parts == 1) fn(0);
    return;
  }
  parallel_run([&](int tid, int nt) {
    for (int p = tid; p < parts; p += nt) fn(p);
  });
}

// Items per thread so that each gets at least ~`work` elements of `per_item` each.
inline int64_t per(int64_t work, int64_t per_item) { return std::max<int64_t>(1, work / std::max<int64_t>(1, per_item)); }

constexpr int64_t kCheap = 32768;  // elements per thread for memory-bound elementwise work
constexpr int64_t kDear = 8192;    // ... for transcendental work

float* scratch_f32(size_t n) {
  static thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Reads a strided iteration space from params[at..]: [rank, shape..., strides of operand 0...,
// of operand 1...]. Checks every operand's reachable range against its buffer, then drops size-1
// dims and merges dims that are contiguous for all operands. Returns the element count.
int64_t read_nd(Call& c, int64_t at, int nops, const int64_t* offs, const int64_t* lens, const char* const* names,
                const void* const* ptrs, int esize, Nd* nd) {
  const double* meta = params(c, at + 1) + at;
  const int64_t rank = as_int(c, meta[0], "rank", 0);
  if (rank > kMaxRank) c.fail("rank %lld exceeds %d", (long long)rank, kMaxRank);
  params(c, at + 1 + rank * (1 + nops));
  int64_t shape[kMaxRank], st[3][kMaxRank];
  int64_t numel = 1;
  for (int64_t d = 0; d < rank; d++) {
    shape[d] = as_int(c, meta[1 + d], "shape[d]", 0);
    numel = c.mul(numel, shape[d]);
  }
  for (int k = 0; k < nops; k++)
    for (int64_t d = 0; d < rank; d++) {
      double v = meta[1 + rank * (1 + k) + d];
      if (v != std::floor(v) || std::fabs(v) > 9007199254740991.0) c.fail("%s stride[%lld] must be an integer, got %g", names[k], (long long)d, v);
      st[k][d] = (int64_t)v;
    }
  for (int k = 0; k < nops; k++) {
    if (offs[k] < 0) c.fail("%s offset must be a non-negative integer, got %lld", names[k], (long long)offs[k]);
    if (numel == 0) continue;
    int64_t lo = offs[k], hi = offs[k];
    for (int64_t d = 0; d < rank; d++) {
      const int64_t span = c.mul(st[k][d], shape[d] - 1);
      if (span < 0) lo += span; else hi += span;
    }
    if (lo < 0 || hi >= lens[k])
      c.fail("%s (offset %lld) addresses [%lld, %lld] outside a buffer of length %lld", names[k], (long long)offs[k], (long long)lo,
             (long long)hi, (long long)lens[k]);
  }
  // Coalesce, outermost first.
  int r = 0;
  for (int64_t d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    bool merge = r > 0;
    for (int k = 0; k < nops && merge; k++) merge = nd->st[k][r - 1] == st[k][d] * shape[d];
    if (merge) {
      nd->shape[r - 1] *= shape[d];
      for (int k = 0; k < nops; k++) nd->st[k][r - 1] = st[k][d];
    } else {
      nd->shape[r] = shape[d];
      for (int k = 0; k < nops; k++) nd->st[k][r] = st[k][d];
      r++;
    }
  }
  if (r == 0) {
    nd->shape[0] = numel;  // 1 (or 0 with a zero dim, which the caller skips)
    for (int k = 0; k < nops; k++) nd->st[k][0] = 0;
    r = 1;
  }
  nd->rank = r;
  for (int k = 0; k < nops; k++) nd->base[k] = (const char*)ptrs[k] + offs[k] * esize;
  return numel;
}

// ================================================================ elementwise

// unary(x, y); params [op, p0, p1]
napi_value JsUnary(Call& c) {
  const double* P = params(c, 3);
  const int64_t op = as_int(c, P[0], "op", 0);
  if (op >= U_COUNT) c.fail("unknown op %lld", (long long)op);
  const float p0 = (float)P[1], p1 = (float)P[2];
  F32 x = arr<float>(c, 0, "x");
  F32 y = arr<float>(c, 1, "y");
  len_eq(c, y, x.len, "y");
  const bool dear = op == U_EXP || op == U_LOG || op == U_TANH || op == U_SIGMOID || op == U_GELU || op == U_GELU_TANH ||
                    op == U_QUICK_GELU || op == U_SILU || op == U_SIN || op == U_COS || op == U_POW_SCALAR;
  const KernelTable& t = kt();
  split(x.len, dear ? kDear : kCheap, 64, [&](int64_t b, int64_t e) { t.unary((int)op, x.data + b, y.data + b, e - b, p0, p1); });
  return nullptr;
}

// unaryBackward(x, y, gy, gx); params [op, p0, p1]
napi_value JsUnaryBackward(Call& c) {
  const double* P = params(c, 3);
  const int64_t op = as_int(c, P[0], "op", 0);
  if (op >= U_COUNT) c.fail("unknown op %lld", (long long)op);
  if (op == U_SIGN) c.fail("'sign' has no gradient");
  const float p0 = (float)P[1], p1 = (float)P[2];
  F32 gy = arr<float>(c, 2, "gy");
  F32 gx = arr<float>(c, 3, "gx");
  const int64_t n = gy.len;
  len_eq(c, gx, n, "gx");
  // Only the buffer the derivative reads is checked (the other may be empty).
  const bool useY = unary_bwd_reads_y((int)op);
  F32 v = useY ? arr<float>(c, 1, "y") : arr<float>(c, 0, "x");
  len_eq(c, v, n, useY ? "y" : "x");
  const float* xp = useY ? nullptr : v.data;
  const float* yp = useY ? v.data : nullptr;
  const KernelTable& t = kt();
  split(n, kDear, 64, [&](int64_t b, int64_t e) {
    t.unary_bwd((int)op, xp ? xp + b : nullptr, yp ? yp + b : nullptr, gy.data + b, gx.data + b, e - b, p0, p1);
  });
  return nullptr;
}

// binary(a, b, out); params [op, aOff, bOff, rank, shape..., aStrides..., bStrides...]
napi_value JsBinary(Call& c) {
  const double* P = params(c, 3);
  const int64_t op = as_int(c, P[0], "op", 0);
  if (op >= B_COUNT) c.fail("unknown op %lld", (long long)op);
  const int64_t aOff = as_int(c, P[1], "aOff", 0), bOff = as_int(c, P[2], "bOff", 0);
  F32 a = arr<float>(c, 0, "a");
  F32 b = arr<float>(c, 1, "b");
  F32 out = arr<float>(c, 2, "out");
  Nd nd;
  const int64_t offs[2] = {aOff, bOff}, lens[2] = {a.len, b.len};
  const char* const names[2] = {"a", "b"};
  const void* const ptrs[2] = {a.data, b.data};
  const int64_t n = read_nd(c, 3, 2, offs, lens, names, ptrs, 4, &nd);
  len_eq(c, out, n, "out");
  const KernelTable& t = kt();
  split(n, op == B_POW ? kDear : kCheap, 64, [&](int64_t e0, int64_t e1) { t.binary((int)op, nd, out.data, e0, e1); });
  return nullptr;
}

// where(cond, a, b, out); params [cOff, aOff, bOff, rank, shape..., cStrides..., aStrides..., bStrides...]
napi_value JsWhere(Call& c) {
  const double* P = params(c, 3);
  const int64_t cOff = as_int(c, P[0], "cOff", 0), aOff = as_int(c, P[1], "aOff", 0), bOff = as_int(c, P[2], "bOff", 0);
  U8 cond = arr<uint8_t>(c, 0, "cond");
  F32 a = arr<float>(c, 1, "a");
  F32 b = arr<float>(c, 2, "b");
  F32 out = arr<float>(c, 3, "out");
  Nd nd;
  const int64_t offs[3] = {cOff, aOff, bOff}, lens[3] = {cond.len, a.len, b.len};
  const char* const names[3] = {"cond", "a", "b"};
  // Operand 0 is bytes: read_nd applies offsets with one element size, so fix cond's base after.
  const void* const ptrs[3] = {cond.data, a.data, b.data};
  const int64_t n = read_nd(c, 3, 3, offs, lens, names, ptrs, 4, &nd);
  nd.base[0] = cond.data + cOff;
  len_eq(c, out, n, "out");
  const KernelTable& t = kt();
  split(n, kCheap, 64, [&](int64_t e0, int64_t e1) { t.where(nd, out.data, e0, e1); });
  return nullptr;
}

// copyStrided(src, dst); params [offset, rank, shape..., strides...]; src and dst of the same typed-array type.
napi_value JsCopyStrided(Call& c) {
  napi_typedarray_type ts, td;
  size_t ls = 0, ld = 0;
  void *ps = nullptr, *pd = nullptr;
  if (napi_get_typedarray_info(c.env, c.arg(0, "src"), &ts, &ls, &ps, nullptr, nullptr) != napi_ok) c.fail("src must be a typed array");
  if (napi_get_typedarray_info(c.env, c.arg(1, "dst"), &td, &ld, &pd, nullptr, nullptr) != napi_ok) c.fail("dst must be a typed array");
  if (ts != td) c.fail("src and dst element types differ");
  int esize;
  switch (ts) {
    case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: esize = 1; break;
    case napi_int16_array: case napi_uint16_array: esize = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: esize = 4; break;
    default: esize = 8; break;
  }
  const int64_t off = as_int(c, params(c, 1)[0], "offset", 0);
  Nd nd;
  const int64_t offs[1] = {off}, lens[1] = {(int64_t)ls};
  const char* const names[1] = {"src"};
  const void* const ptrs[1] = {ps};
  const int64_t n = read_nd(c, 1, 1, offs, lens, names, ptrs, esize, &nd);
  if ((int64_t)ld != n) c.fail("dst has length %lld, expected %lld", (long long)ld, (long long)n);
  split(n, kCheap * 2, 64, [&](int64_t e0, int64_t e1) { copy_strided(nd, esize, pd, e0, e1); });
  return nullptr;
}

// ================================================================ reductions

void check_reduce(Call& c, int64_t xl, int64_t outl, int64_t outer, int64_t n, int64_t inner) {
  if (xl != c.mul({outer, n, inner})) c.fail("x has length %lld, expected %lld", (long long)xl, (long long)(outer * n * inner));
  if (outl != c.mul(outer, inner)) c.fail("out has length %lld, expected %lld", (long long)outl, (long long)(outer * inner));
}

// reduce(op 0 sum | 1 max | 2 min, x, outer, n, inner, out)
napi_value JsReduce(Call& c) {
  const int64_t op = dim(c, 0, "op");
  if (op > R_MIN) c.fail("unknown op %lld", (long long)op);
  F32 x = arr<float>(c, 1, "x");
  const int64_t outer = dim(c, 2, "outer"), n = dim(c, 3, "n"), inner = dim(c, 4, "inner");
  F32 out = arr<float>(c, 5, "out");
  check_reduce(c, x.len, out.len, outer, n, inner);
  if (op != R_SUM && n == 0 && outer * inner > 0) c.fail("%s over an empty dimension (n = 0)", op == R_MAX ? "max" : "min");
  const KernelTable& t = kt();
  if (inner == 1 && outer == 1 && n >= 2 * kCheap && get_threads() > 1) {
    // One long row: partial results per thread, combined here.
    float part[256];
    const int nt = std::min(get_threads(), 256);
    const int64_t chunk = (n + nt - 1) / nt;
    run_parts(nt, [&](int p) {
      const int64_t b = std::min<int64_t>(n, p * chunk), e = std::min<int64_t>(n, b + chunk);
      part[p] = 0;
      if (e > b) t.reduce_rows((int)op, x.data + b, &part[p], 1, e - b);
      else if (op != R_SUM) part[p] = op == R_MAX ? -INFINITY : INFINITY;
    });
    double s = 0;
    float r = part[0];
    for (int i = 0; i < nt; i++) s += part[i];
    for (int i = 1; i < nt && !std::isnan(r); i++)
      if (std::isnan(part[i]) || (op == R_MAX ? part[i] > r : part[i] < r)) r = part[i];
    out[0] = op == R_SUM ? (float)s : r;
  } else if (inner == 1) {
    split(outer, per(kCheap, n), 1, [&](int64_t b, int64_t e) { t.reduce_rows((int)op, x.data + b * n, out.data + b, e - b, n); });
  } else if (outer * inner > 0) {
    const int64_t units = outer * ((inner + kReduceCols - 1) / kReduceCols);
    split(units, per(kCheap, n * kReduceCols), 1, [&](int64_t b, int64_t e) { t.reduce_cols((int)op, x.data, out.data, n, inner, b, e); });
  }
  return nullptr;
}

// argReduce(isMax, x, outer, n, inner, out: Int32Array)
napi_value JsArgReduce(Call& c) {
  const bool isMax = flag(c, 0, "isMax");
  F32 x = arr<float>(c, 1, "x");
  const int64_t outer = dim(c, 2, "outer"), n = dim(c, 3, "n"), inner = dim(c, 4, "inner");
  I32 out = arr<int32_t>(c, 5, "out");
  check_reduce(c, x.len, out.len, outer, n, inner);
  if (n == 0 && outer * inner > 0) c.fail("%s over an empty dimension (n = 0)", isMax ? "argmax" : "argmin");
  if (outer * inner == 0) return nullptr;
  split(outer * inner, per(kCheap, n), 1, [&](int64_t b, int64_t e) { argreduce(isMax, x.data, out.data, outer, n, inner, b, e); });
  return nullptr;
}

// sumSquares(x) -> number (f64 accumulation)
napi_value JsSumSquares(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  const KernelTable& t = kt();
  double part[256];
  const int nt = std::min(get_threads(), 256);
  if (nt > 1 && x.len >= 4 * kCheap) {
    const int64_t chunk = (x.len + nt - 1) / nt;
    run_parts(nt, [&](int p) {
      const int64_t b = std::min<int64_t>(x.len, p * chunk), e = std::min<int64_t>(x.len, b + chunk);
      part[p] = t.sum_squares(x.data + b, e - b);
    });
    double s = 0;
    for (int i = 0; i < nt; i++) s += part[i];
    return c.number_value(s);
  }
  return c.number_value(t.sum_squares(x.data, x.len));
}

// ================================================================ softmax / norms

void rows_n(Call& c, size_t ir, size_t in, int64_t* rows, int64_t* n) {
  *rows = dim(c, ir, "rows");
  *n = dim(c, in, "n");
}

// softmax(x, y, rows, n, log)
napi_value JsSoftmax(Call& c) {
  F32 x = arr<float>(c, 0, "x"), y = arr<float>(c, 1, "y");
  int64_t rows, n;
  rows_n(c, 2, 3, &rows, &n);
  const bool log = flag(c, 4, "log");
  const int64_t total = c.mul(rows, n);
  len_eq(c, x, total, "x");
  len_eq(c, y, total, "y");
  const KernelTable& t = kt();
  split(rows, per(kDear, n), 1, [&](int64_t b, int64_t e) { t.softmax(x.data + b * n, y.data + b * n, e - b, n, log); });
  return nullptr;
}

// softmaxBackward(y, gy, gx, rows, n, log)
napi_value JsSoftmaxBackward(Call& c) {
  F32 y = arr<float>(c, 0, "y"), gy = arr<float>(c, 1, "gy"), gx = arr<float>(c, 2, "gx");
  int64_t rows, n;
  rows_n(c, 3, 4, &rows, &n);
  const bool log = flag(c, 5, "log");
  const int64_t total = c.mul(rows, n);
  len_eq(c, y, total, "y");
  len_eq(c, gy, total, "gy");
  len_eq(c, gx, total, "gx");
  const KernelTable& t = kt();
  split(rows, per(log ? kDear : kCheap, n), 1,
        [&](int64_t b, int64_t e) { t.softmax_bwd(y.data + b * n, gy.data + b * n, gx.data + b * n, e - b, n, log); });
  return nullptr;
}

void check_norm(Call& c, int64_t rows, int64_t n) {
  if (n == 0 && rows > 0) c.fail("n must be >= 1 (rows %lld)", (long long)rows);
}

// Runs a row kernel that accumulates per-column sums into acc buffers (gw, gb) over threads:
// thread 0 adds into the real buffers, the others into zeroed scratch that is added afterwards.
template <class Fn>
void rows_with_column_sums(int64_t rows, int64_t n, int64_t min_rows, float* acc0, float* acc1, const Fn& fn) {
  const int nt = get_threads();
  if (nt <= 1 || rows < 2 * min_rows || (!acc0 && !acc1)) {
    if (nt > 1 && rows >= 2 * min_rows) {
      split(rows, min_rows, 1, [&](int64_t b, int64_t e) { fn(b, e, nullptr, nullptr); });
    } else {
      fn(0, rows, acc0, acc1);
    }
    return;
  }
  const int parts = (int)std::min<int64_t>(nt, rows / min_rows);
  float* scr = scratch_f32((size_t)(parts - 1) * 2 * n);
  std::fill(scr, scr + (size_t)(parts - 1) * 2 * n, 0.f);
  run_parts(parts, [&](int p) {
    const int64_t b = rows * p / parts, e = rows * (p + 1) / parts;
    float* a0 = acc0 ? (p == 0 ? acc0 : scr + (size_t)(p - 1) * 2 * n) : nullptr;
    float* a1 = acc1 ? (p == 0 ? acc1 : scr + (size_t)(p - 1) * 2 * n + n) : nullptr;
    fn(b, e, a0, a1);
  });
  const KernelTable& t = kt();
  for (int p = 1; p < parts; p++) {
    if (acc0) t.acc(acc0, scr + (size_t)(p - 1) * 2 * n, n);
    if (acc1) t.acc(acc1, scr + (size_t)(p - 1) * 2 * n + n, n);
  }
}

// layerNorm(x, w | null, b | null, y, mean, rstd, rows, n, eps)
napi_value JsLayerNorm(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  F32 w = arr_or_null<float>(c, 1, "w"), b = arr_or_null<float>(c, 2, "b");
  F32 y = arr<float>(c, 3, "y"), mean = arr<float>(c, 4, "mean"), rstd = arr<float>(c, 5, "rstd");
  int64_t rows, n;
  rows_n(c, 6, 7, &rows, &n);
  const float eps = (float)num(c, 8, "eps");
  check_norm(c, rows, n);
  const int64_t total = c.mul(rows, n);
  len_eq(c, x, total, "x");
  len_eq(c, y, total, "y");
  if (!w.null()) len_eq(c, w, n, "w");
  if (!b.null()) len_eq(c, b, n, "b");
  len_eq(c, mean, rows, "mean");
  len_eq(c, rstd, rows, "rstd");
  const KernelTable& t = kt();
  split(rows, per(kCheap, n), 1, [&](int64_t r0, int64_t r1) {
    t.layernorm(x.data + r0 * n, w.data, b.data, y.data + r0 * n, mean.data + r0, rstd.data + r0, r1 - r0, n, eps);
  });
  return nullptr;
}

// layerNormBackward(x, w | null, mean, rstd, gy, gx, gw | null, gb | null, rows, n)
napi_value JsLayerNormBackward(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  F32 w = arr_or_null<float>(c, 1, "w");
  F32 mean = arr<float>(c, 2, "mean"), rstd = arr<float>(c, 3, "rstd");
  F32 gy = arr<float>(c, 4, "gy"), gx = arr<float>(c, 5, "gx");
  F32 gw = arr_or_null<float>(c, 6, "gw"), gb = arr_or_null<float>(c, 7, "gb");
  int64_t rows, n;
  rows_n(c, 8, 9, &rows, &n);
  check_norm(c, rows, n);
  const int64_t total = c.mul(rows, n);
  len_eq(c, x, total, "x");
  len_eq(c, gy, total, "gy");
  len_eq(c, gx, total, "gx");
  if (!w.null()) len_eq(c, w, n, "w");
  if (!gw.null()) len_eq(c, gw, n, "gw");
  if (!gb.null()) len_eq(c, gb, n, "gb");
  len_eq(c, mean, rows, "mean");
  len_eq(c, rstd, rows, "rstd");
  const KernelTable& t = kt();
  rows_with_column_sums(rows, n, per(kCheap, n), gw.data, gb.data, [&](int64_t r0, int64_t r1, float* a0, float* a1) {
    t.layernorm_bwd(x.data + r0 * n, w.data, mean.data + r0, rstd.data + r0, gy.data + r0 * n, gx.data + r0 * n, a0, a1, r1 - r0, n);
  });
  return nullptr;
}

// rmsNorm(x, w | null, y, rstd, rows, n, eps)
napi_value JsRmsNorm(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  F32 w = arr_or_null<float>(c, 1, "w");
  F32 y = arr<float>(c, 2, "y"), rstd = arr<float>(c, 3, "rstd");
  int64_t rows, n;
  rows_n(c, 4, 5, &rows, &n);
  const float eps = (float)num(c, 6, "eps");
  check_norm(c, rows, n);
  const int64_t total = c.mul(rows, n);
  len_eq(c, x, total, "x");
  len_eq(c, y, total, "y");
  if (!w.null()) len_eq(c, w, n, "w");
  len_eq(c, rstd, rows, "rstd");
  const KernelTable& t = kt();
  split(rows, per(kCheap, n), 1, [&](int64_t r0, int64_t r1) {
    t.rmsnorm(x.data + r0 * n, w.data, y.data + r0 * n, rstd.data + r0, r1 - r0, n, eps);
  });
  return nullptr;
}

// rmsNormBackward(x, w | null, rstd, gy, gx, gw | null, rows, n)
napi_value JsRmsNormBackward(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  F32 w = arr_or_null<float>(c, 1, "w");
  F32 rstd = arr<float>(c, 2, "rstd"), gy = arr<float>(c, 3, "gy"), gx = arr<float>(c, 4, "gx");
  F32 gw = arr_or_null<float>(c, 5, "gw");
  int64_t rows, n;
  rows_n(c, 6, 7, &rows, &n);
  check_norm(c, rows, n);
  const int64_t total = c.mul(rows, n);
  len_eq(c, x, total, "x");
  len_eq(c, gy, total, "gy");
  len_eq(c, gx, total, "gx");
  if (!w.null()) len_eq(c, w, n, "w");
  if (!gw.null()) len_eq(c, gw, n, "gw");
  len_eq(c, rstd, rows, "rstd");
  const KernelTable& t = kt();
  rows_with_column_sums(rows, n, per(kCheap, n), gw.data, nullptr, [&](int64_t r0, int64_t r1, float* a0, float*) {
    t.rmsnorm_bwd(x.data + r0 * n, w.data, rstd.data + r0, gy.data + r0 * n, gx.data + r0 * n, a0, r1 - r0, n);
  });
  return nullptr;
}

// rope(x, y, cos, sin, N, T, D, rot, interleaved, inverse)
napi_value JsRope(Call& c) {
  F32 x = arr<float>(c, 0, "x"), y = arr<float>(c, 1, "y"), cs = arr<float>(c, 2, "cos"), sn = arr<float>(c, 3, "sin");
  const int64_t N = dim(c, 4, "N"), T = dim(c, 5, "T"), D = dim(c, 6, "D"), rot = dim(c, 7, "rot");
  const bool interleaved = flag(c, 8, "interleaved"), inverse = flag(c, 9, "inverse");
  if (rot % 2 != 0 || rot > D) c.fail("rot must be even and <= D, got rot %lld, D %lld", (long long)rot, (long long)D);
  const int64_t half = rot / 2, total = c.mul({N, T, D});
  len_eq(c, x, total, "x");
  len_eq(c, y, total, "y");
  len_eq(c, cs, c.mul(T, half), "cos");
  len_eq(c, sn, c.mul(T, half), "sin");
  if (N * T == 0) return nullptr;
  const KernelTable& t = kt();
  split(N * T, per(kCheap, D), 1, [&](int64_t r0, int64_t r1) { t.rope(x.data, y.data, cs.data, sn.data, r0, r1, T, D, rot, interleaved, inverse); });
  return nullptr;
}

// ================================================================ attention

// params = [B, H, Hkv, Tq, Tk, D, Dv, scale, causal (0/1), maskStrideB, maskStrideH, maskStrideQ]
Attn read_attn(Call& c, size_t iq, size_t ik, size_t iv, size_t imask) {
  F32 q = arr<float>(c, iq, "q"), k = arr<float>(c, ik, "k"), v = arr<float>(c, iv, "v");
  U8 mask = arr_or_null<uint8_t>(c, imask, "mask");
  const double* d = params(c, 12);
  Attn a{};
  a.B = as_int(c, d[0], "B", 0);
  a.H = as_int(c, d[1], "H", 1);
  a.Hkv = as_int(c, d[2], "Hkv", 1);
  a.Tq = as_int(c, d[3], "Tq", 0);
  a.Tk = as_int(c, d[4], "Tk", 0);
  a.D = as_int(c, d[5], "D", 0);
  a.Dv = as_int(c, d[6], "Dv", 0);
  if (a.H % a.Hkv != 0) c.fail("H = %lld is not a multiple of Hkv = %lld", (long long)a.H, (long long)a.Hkv);
  if (!std::isfinite(d[7])) c.fail("scale must be finite, got %g", d[7]);
  a.scale = (float)d[7];
  a.causal = d[8] != 0;
  len_eq(c, q, c.mul({a.B, a.H, a.Tq, a.D}), "q");
  len_eq(c, k, c.mul({a.B, a.Hkv, a.Tk, a.D}), "k");
  len_eq(c, v, c.mul({a.B, a.Hkv, a.Tk, a.Dv}), "v");
  a.q = q.data;
  a.k = k.data;
  a.v = v.data;
  a.mask = nullptr;
  if (!mask.null()) {
    a.msB = as_int(c, d[9], "maskStrideB", 0);
    a.msH = as_int(c, d[10], "maskStrideH", 0);
    a.msQ = as_int(c, d[11], "maskStrideQ", 0);
    if (a.B > 0 && a.Tq > 0 && a.Tk > 0) {
      const int64_t last = c.mul(a.B - 1, a.msB) + c.mul(a.H - 1, a.msH) + c.mul(a.Tq - 1, a.msQ) + a.Tk - 1;
      if (last >= mask.len) c.fail("mask needs index %lld for [%lld, %lld, %lld, %lld] but has length %lld", (long long)last, (long long)a.B,
                                   (long long)a.H, (long long)a.Tq, (long long)a.Tk, (long long)mask.len);
    }
    a.mask = mask.data;
  }
  return a;
}

// Multiply-adds of one pass, for the threading decision.
double attn_work(const Attn& a) { return (double)a.B * a.H * a.Tq * a.Tk * (double)(a.D + a.Dv) * (a.causal ? 0.5 : 1.0); }

// attention(q, k, v, mask | null, out, lse); params as read_attn
napi_value JsAttention(Call& c) {
  Attn a = read_attn(c, 0, 1, 2, 3);
  F32 out = arr<float>(c, 4, "out"), lse = arr<float>(c, 5, "lse");
  len_eq(c, out, c.mul({a.B, a.H, a.Tq, a.Dv}), "out");
  len_eq(c, lse, c.mul({a.B, a.H, a.Tq}), "lse");
  const int64_t units = a.B * a.H * ((a.Tq + kAttnQB - 1) / kAttnQB);
  if (units == 0) return nullptr;
  const KernelTable& t = kt();
  const int64_t per_thread = attn_fwd_scratch(a.D, a.Dv, a.Tk);
  const int nt = (int)std::min<int64_t>(get_threads(), units);
  if (nt <= 1 || attn_work(a) < 1 << 17) {
    t.attn_fwd(a, out.data, lse.data, 0, units, scratch_f32((size_t)per_thread));
    return nullptr;
  }
  float* scr = scratch_f32((size_t)(per_thread * nt));
  run_parts(nt, [&](int p) { t.attn_fwd(a, out.data, lse.data, units * p / nt, units * (p + 1) / nt, scr + per_thread * p); });
  return nullptr;
}

// attentionBackward(q, k, v, mask | null, out, lse, gOut, gq, gk, gv); params as read_attn
napi_value JsAttentionBackward(Call& c) {
  Attn a = read_attn(c, 0, 1, 2, 3);
  F32 out = arr<float>(c, 4, "out"), lse = arr<float>(c, 5, "lse"), gout = arr<float>(c, 6, "gOut");
  F32 gq = arr<float>(c, 7, "gq"), gk = arr<float>(c, 8, "gk"), gv = arr<float>(c, 9, "gv");
  const int64_t rowsQ = c.mul({a.B, a.H, a.Tq});
  len_eq(c, out, c.mul(rowsQ, a.Dv), "out");
  len_eq(c, lse, rowsQ, "lse");
  len_eq(c, gout, c.mul(rowsQ, a.Dv), "gOut");
  len_eq(c, gq, c.mul(rowsQ, a.D), "gq");
  len_eq(c, gk, c.mul({a.B, a.Hkv, a.Tk, a.D}), "gk");
  len_eq(c, gv, c.mul({a.B, a.Hkv, a.Tk, a.Dv}), "gv");
  const KernelTable& t = kt();
  std::fill(gq.data, gq.data + gq.len, 0.f);
  if (a.Tk == 0 || a.B == 0) {
    std::fill(gk.data, gk.data + gk.len, 0.f);
    std::fill(gv.data, gv.data + gv.len, 0.f);
    return nullptr;
  }
  const int64_t nkb = (a.Tk + kAttnKT - 1) / kAttnKT;
  const int64_t units = a.B * a.Hkv * nkb;
  const int64_t per_thread = attn_bwd_scratch(a.D, a.Dv);
  int nt = (int)std::min<int64_t>(get_threads(), units);
  if (attn_work(a) < 1 << 16) nt = 1;
  // Layout of the scratch: Di [rowsQ], per-thread tiles, then dq for threads that share query rows.
  bool shared = false;
  for (int i = 1; i < nt; i++) shared |= (units * i / nt) % nkb != 0;
  const int64_t dqn = shared ? rowsQ * a.D : 0;
  float* scr = scratch_f32((size_t)(rowsQ + per_thread * nt + dqn * (nt - 1)));
  float* di = scr;
  float* tiles = di + rowsQ;
  float* dqs = tiles + per_thread * nt;
  split(rowsQ, per(kCheap, a.Dv), 1, [&](int64_t b, int64_t e) { t.rowdot(gout.data + b * a.Dv, out.data + b * a.Dv, di + b, e - b, a.Dv); });
  a.out = out.data;
  a.lse = lse.data;
  a.gout = gout.data;
  a.di = di;
  a.gk = gk.data;
  a.gv = gv.data;
  if (nt <= 1) {
    t.attn_bwd(a, gq.data, 0, units, tiles);
    return nullptr;
  }
  if (shared) std::fill(dqs, dqs + dqn * (nt - 1), 0.f);
  run_parts(nt, [&](int p) {
    float* dq = (!shared || p == 0) ? gq.data : dqs + dqn * (p - 1);
    t.attn_bwd(a, dq, units * p / nt, units * (p + 1) / nt, tiles + per_thread * p);
  });
  if (shared)
    for (int i = 1; i < nt; i++) {
      const float* src = dqs + dqn * (i - 1);
      split(dqn, kCheap, 64, [&](int64_t b, int64_t e) { t.acc(gq.data + b, src + b, e - b); });
    }
  return nullptr;
}

// ================================================================ convolution helpers

// params = [C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo]
Conv read_conv(Call& c) {
  const double* d = params(c, 13);
  Conv g;
  g.C = as_int(c, d[0], "C", 0);
  g.H = as_int(c, d[1], "H", 0);
  g.W = as_int(c, d[2], "W", 0);
  g.kh = as_int(c, d[3], "kh", 1);
  g.kw = as_int(c, d[4], "kw", 1);
  g.sh = as_int(c, d[5], "sh", 1);
  g.sw = as_int(c, d[6], "sw", 1);
  g.ph = as_int(c, d[7], "ph", 0);
  g.pw = as_int(c, d[8], "pw", 0);
  g.dh = as_int(c, d[9], "dh", 1);
  g.dw = as_int(c, d[10], "dw", 1);
  g.Ho = as_int(c, d[11], "Ho", 0);
  g.Wo = as_int(c, d[12], "Wo", 0);
  // floor division (the numerator can be negative)
  auto fdiv = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  const int64_t ho = fdiv(g.H + 2 * g.ph - g.dh * (g.kh - 1) - 1, g.sh) + 1;
  const int64_t wo = fdiv(g.W + 2 * g.pw - g.dw * (g.kw - 1) - 1, g.sw) + 1;
  if (ho < 1 || wo < 1) c.fail("kernel %lldx%lld does not fit input %lldx%lld", (long long)g.kh, (long long)g.kw, (long long)g.H, (long long)g.W);
  if (g.Ho != ho || g.Wo != wo)
    c.fail("output %lldx%lld does not match the geometry, expected %lldx%lld", (long long)g.Ho, (long long)g.Wo, (long long)ho, (long long)wo);
  c.mul({g.C, g.kh, g.kw, g.Ho, g.Wo});
  c.mul({g.C, g.H, g.W});
  return g;
}

// im2col(x, xOff, cols); params as read_conv
napi_value JsIm2col(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  const int64_t xOff = dim(c, 1, "xOff");
  F32 cols = arr<float>(c, 2, "cols");
  Conv g = read_conv(c);
  const int64_t img = g.C * g.H * g.W;
  if (xOff + img > x.len) c.fail("x [%lld, %lld, %lld] at offset %lld needs %lld elements but has %lld", (long long)g.C, (long long)g.H, (long long)g.W,
                                 (long long)xOff, (long long)(xOff + img), (long long)x.len);
  const int64_t per_c = g.kh * g.kw * g.Ho * g.Wo;
  len_eq(c, cols, g.C * per_c, "cols");
  split(g.C, per(kCheap, per_c), 1, [&](int64_t b, int64_t e) { im2col(x.data + xOff, g, cols.data, b, e); });
  return nullptr;
}

// col2im(cols, gx, gxOff); params as read_conv
napi_value JsCol2im(Call& c) {
  F32 cols = arr<float>(c, 0, "cols");
  F32 gx = arr<float>(c, 1, "gx");
  const int64_t gxOff = dim(c, 2, "gxOff");
  Conv g = read_conv(c);
  const int64_t img = g.C * g.H * g.W;
  if (gxOff + img > gx.len) c.fail("gx [%lld, %lld, %lld] at offset %lld needs %lld elements but has %lld", (long long)g.C, (long long)g.H,
                                   (long long)g.W, (long long)gxOff, (long long)(gxOff + img), (long long)gx.len);
  const int64_t per_c = g.kh * g.kw * g.Ho * g.Wo;
  len_eq(c, cols, g.C * per_c, "cols");
  split(g.C, per(kCheap, per_c), 1, [&](int64_t b, int64_t e) { col2im(cols.data, g, gx.data + gxOff, b, e); });
  return nullptr;
}

// depthwiseConv2d(x, w, bias | null, y, N); params as read_conv
napi_value JsDepthwiseConv2d(Call& c) {
  F32 x = arr<float>(c, 0, "x"), w = arr<float>(c, 1, "w");
  F32 bias = arr_or_null<float>(c, 2, "bias");
  F32 y = arr<float>(c, 3, "y");
  const int64_t N = dim(c, 4, "N");
  Conv g = read_conv(c);
  len_eq(c, x, c.mul({N, g.C, g.H, g.W}), "x");
  len_eq(c, w, g.C * g.kh * g.kw, "w");
  if (!bias.null()) len_eq(c, bias, g.C, "bias");
  len_eq(c, y, c.mul({N, g.C, g.Ho, g.Wo}), "y");
  split(N * g.C, per(kCheap / 4, g.Ho * g.Wo * g.kh * g.kw), 1,
        [&](int64_t b, int64_t e) { dwconv(x.data, w.data, bias.data, y.data, g, b, e); });
  return nullptr;
}

// depthwiseConv2dBackward(x, w, gy, gx, gw, N); params as read_conv
napi_value JsDepthwiseConv2dBackward(Call& c) {
  F32 x = arr<float>(c, 0, "x"), w = arr<float>(c, 1, "w"), gy = arr<float>(c, 2, "gy"), gx = arr<float>(c, 3, "gx"), gw = arr<float>(c, 4, "gw");
  const int64_t N = dim(c, 5, "N");
  Conv g = read_conv(c);
  len_eq(c, x, c.mul({N, g.C, g.H, g.W}), "x");
  len_eq(c, w, g.C * g.kh * g.kw, "w");
  len_eq(c, gy, c.mul({N, g.C, g.Ho, g.Wo}), "gy");
  len_eq(c, gx, c.mul({N, g.C, g.H, g.W}), "gx");
  len_eq(c, gw, g.C * g.kh * g.kw, "gw");
  const int64_t work = g.Ho * g.Wo * g.kh * g.kw;
  split(N * g.C, per(kCheap / 4, work), 1, [&](int64_t b, int64_t e) { dwconv_bwd_x(w.data, gy.data, gx.data, g, b, e); });
  split(g.C, per(kCheap / 4, work * std::max<int64_t>(N, 1)), 1, [&](int64_t b, int64_t e) { dwconv_bwd_w(x.data, gy.data, gw.data, g, N, b, e); });
  return nullptr;
}

// ================================================================ pooling / resizing

// params = [NC, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, countIncludePad]
Pool read_pool(Call& c) {
  const double* d = params(c, 12);
  Pool g;
  g.NC = as_int(c, d[0], "NC", 0);
  g.H = as_int(c, d[1], "H", 0);
  g.W = as_int(c, d[2], "W", 0);
  g.kh = as_int(c, d[3], "kh", 1);
  g.kw = as_int(c, d[4], "kw", 1);
  g.sh = as_int(c, d[5], "sh", 1);
  g.sw = as_int(c, d[6], "sw", 1);
  g.ph = as_int(c, d[7], "ph", 0);
  g.pw = as_int(c, d[8], "pw", 0);
  g.Ho = as_int(c, d[9], "Ho", 0);
  g.Wo = as_int(c, d[10], "Wo", 0);
  g.includePad = d[11] != 0;
  if (2 * g.ph > g.kh || 2 * g.pw > g.kw) c.fail("padding %lldx%lld exceeds half the kernel %lldx%lld", (long long)g.ph, (long long)g.pw, (long long)g.kh, (long long)g.kw);
  auto fdiv = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  const int64_t ho = fdiv(g.H + 2 * g.ph - g.kh, g.sh) + 1, wo = fdiv(g.W + 2 * g.pw - g.kw, g.sw) + 1;
  if (ho < 1 || wo < 1) c.fail("kernel %lldx%lld does not fit input %lldx%lld", (long long)g.kh, (long long)g.kw, (long long)g.H, (long long)g.W);
  if (g.Ho != ho || g.Wo != wo)
    c.fail("output %lldx%lld does not match the geometry, expected %lldx%lld", (long long)g.Ho, (long long)g.Wo, (long long)ho, (long long)wo);
  c.mul({g.NC, g.H, g.W});
  c.mul({g.NC, g.Ho, g.Wo});
  return g;
}

// pool2d(isMax, x, y, argmax | null); params as read_pool
napi_value JsPool2d(Call& c) {
  const bool isMax = flag(c, 0, "isMax");
  F32 x = arr<float>(c, 1, "x"), y = arr<float>(c, 2, "y");
  I32 am = arr_or_null<int32_t>(c, 3, "argmax");
  Pool g = read_pool(c);
  len_eq(c, x, g.NC * g.H * g.W, "x");
  len_eq(c, y, g.NC * g.Ho * g.Wo, "y");
  if (!am.null()) len_eq(c, am, g.NC * g.Ho * g.Wo, "argmax");
  split(g.NC, per(kCheap / 4, g.Ho * g.Wo * g.kh * g.kw), 1,
        [&](int64_t b, int64_t e) { pool2d(isMax, x.data, y.data, isMax ? am.data : nullptr, g, b, e); });
  return nullptr;
}

// pool2dBackward(isMax, gy, argmax | null, gx); params as read_pool; accumulates into gx
napi_value JsPool2dBackward(Call& c) {
  const bool isMax = flag(c, 0, "isMax");
  F32 gy = arr<float>(c, 1, "gy");
  I32 am = arr_or_null<int32_t>(c, 2, "argmax");
  F32 gx = arr<float>(c, 3, "gx");
  Pool g = read_pool(c);
  len_eq(c, gy, g.NC * g.Ho * g.Wo, "gy");
  len_eq(c, gx, g.NC * g.H * g.W, "gx");
  if (isMax) {
    if (am.null()) c.fail("max pooling backward needs argmax");
    len_eq(c, am, g.NC * g.Ho * g.Wo, "argmax");
    const int64_t HW = g.H * g.W;
    for (int64_t i = 0; i < am.len; i++)
      if (am[i] < 0 || am[i] >= HW) c.fail("argmax[%lld] = %d outside [0, %lld)", (long long)i, am[i], (long long)HW);
  }
  split(g.NC, per(kCheap / 4, g.Ho * g.Wo * g.kh * g.kw), 1, [&](int64_t b, int64_t e) { pool2d_bwd(isMax, gy.data, am.data, gx.data, g, b, e); });
  return nullptr;
}

// params = [NC, H, W, Ho, Wo, mode (0 nearest, 1 bilinear, 2 bicubic), alignCorners, scaleH, scaleW]
Interp read_interp(Call& c) {
  const double* d = params(c, 9);
  Interp g;
  g.NC = as_int(c, d[0], "NC", 0);
  g.H = as_int(c, d[1], "H", 1);
  g.W = as_int(c, d[2], "W", 1);
  g.Ho = as_int(c, d[3], "Ho", 1);
  g.Wo = as_int(c, d[4], "Wo", 1);
  const int64_t mode = as_int(c, d[5], "mode", 0);
  if (mode > 2) c.fail("unknown mode %lld", (long long)mode);
  g.mode = (int)mode;
  g.alignCorners = d[6] != 0;
  if (g.mode == 0 && g.alignCorners) c.fail("alignCorners is not defined for nearest");
  g.scaleH = d[7];
  g.scaleW = d[8];
  if (!(std::isfinite(g.scaleH) && g.scaleH >= 0) || !(std::isfinite(g.scaleW) && g.scaleW >= 0))
    c.fail("scaleH/scaleW must be finite and >= 0, got %g, %g", g.scaleH, g.scaleW);
  c.mul({g.NC, g.H, g.W});
  c.mul({g.NC, g.Ho, g.Wo});
  return g;
}

// interpolate(x, y); params as read_interp
napi_value JsInterpolate(Call& c) {
  F32 x = arr<float>(c, 0, "x"), y = arr<float>(c, 1, "y");
  Interp g = read_interp(c);
  len_eq(c, x, g.NC * g.H * g.W, "x");
  len_eq(c, y, g.NC * g.Ho * g.Wo, "y");
  split(g.NC, per(kCheap / 8, g.Ho * g.Wo), 1, [&](int64_t b, int64_t e) { interpolate(x.data, y.data, g, b, e); });
  return nullptr;
}

// interpolateBackward(gy, gx); params as read_interp; accumulates into gx
napi_value JsInterpolateBackward(Call& c) {
  F32 gy = arr<float>(c, 0, "gy"), gx = arr<float>(c, 1, "gx");
  Interp g = read_interp(c);
  len_eq(c, gy, g.NC * g.Ho * g.Wo, "gy");
  len_eq(c, gx, g.NC * g.H * g.W, "gx");
  split(g.NC, per(kCheap / 8, g.Ho * g.Wo), 1, [&](int64_t b, int64_t e) { interpolate_bwd(gy.data, gx.data, g, b, e); });
  return nullptr;
}

// ================================================================ indexing

void check_indices(Call& c, const I32& idx, int64_t n) {
  for (int64_t i = 0; i < idx.len; i++)
    if (idx[i] < 0 || idx[i] >= n) c.fail("idx[%lld] = %d outside [0, %lld)", (long long)i, idx[i], (long long)n);
}

// Splits accumulate-by-index work over outer when it has enough rows, else over inner columns.
template <class Fn>
void split_outer_or_cols(int64_t outer, int64_t inner, int64_t work_per_outer, const Fn& fn) {
  const int64_t min_outer = per(kCheap, work_per_outer);
  if (outer >= 2 * min_outer || inner < 128) {
    split(outer, min_outer, 1, [&](int64_t b, int64_t e) { fn(b, e, (int64_t)0, inner); });
  } else {
    split(inner, std::max<int64_t>(64, per(kCheap, work_per_outer / std::max<int64_t>(inner, 1) * outer)), 16,
          [&](int64_t b, int64_t e) { fn((int64_t)0, outer, b, e); });
  }
}

// indexSelect(x, idx, y, outer, n, inner)
napi_value JsIndexSelect(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  I32 idx = arr<int32_t>(c, 1, "idx");
  F32 y = arr<float>(c, 2, "y");
  const int64_t outer = dim(c, 3, "outer"), n = dim(c, 4, "n"), inner = dim(c, 5, "inner");
  const int64_t m = idx.len;
  len_eq(c, x, c.mul({outer, n, inner}), "x");
  len_eq(c, y, c.mul({outer, m, inner}), "y");
  check_indices(c, idx, n);
  split(outer * m, per(kCheap, inner), 1, [&](int64_t b, int64_t e) { index_select(x.data, idx.data, y.data, m, n, inner, b, e); });
  return nullptr;
}

// indexAdd(gy, idx, gx, outer, n, inner)
napi_value JsIndexAdd(Call& c) {
  F32 gy = arr<float>(c, 0, "gy");
  I32 idx = arr<int32_t>(c, 1, "idx");
  F32 gx = arr<float>(c, 2, "gx");
  const int64_t outer = dim(c, 3, "outer"), n = dim(c, 4, "n"), inner = dim(c, 5, "inner");
  const int64_t m = idx.len;
  len_eq(c, gy, c.mul({outer, m, inner}), "gy");
  len_eq(c, gx, c.mul({outer, n, inner}), "gx");
  check_indices(c, idx, n);
  split_outer_or_cols(outer, inner, m * inner, [&](int64_t o0, int64_t o1, int64_t c0, int64_t c1) {
    index_add(gy.data, idx.data, gx.data, m, n, inner, o0, o1, c0, c1);
  });
  return nullptr;
}

// gather(x, idx, y, outer, n, m, inner)
napi_value JsGather(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  I32 idx = arr<int32_t>(c, 1, "idx");
  F32 y = arr<float>(c, 2, "y");
  const int64_t outer = dim(c, 3, "outer"), n = dim(c, 4, "n"), m = dim(c, 5, "m"), inner = dim(c, 6, "inner");
  len_eq(c, x, c.mul({outer, n, inner}), "x");
  len_eq(c, idx, c.mul({outer, m, inner}), "idx");
  len_eq(c, y, c.mul({outer, m, inner}), "y");
  check_indices(c, idx, n);
  split(outer * m, per(kCheap, inner), 1, [&](int64_t b, int64_t e) { gather(x.data, idx.data, y.data, n, m, inner, b, e); });
  return nullptr;
}

// scatterAdd(gy, idx, gx, outer, n, m, inner)
napi_value JsScatterAdd(Call& c) {
  F32 gy = arr<float>(c, 0, "gy");
  I32 idx = arr<int32_t>(c, 1, "idx");
  F32 gx = arr<float>(c, 2, "gx");
  const int64_t outer = dim(c, 3, "outer"), n = dim(c, 4, "n"), m = dim(c, 5, "m"), inner = dim(c, 6, "inner");
  len_eq(c, gy, c.mul({outer, m, inner}), "gy");
  len_eq(c, idx, c.mul({outer, m, inner}), "idx");
  len_eq(c, gx, c.mul({outer, n, inner}), "gx");
  check_indices(c, idx, n);
  split_outer_or_cols(outer, inner, m * inner, [&](int64_t o0, int64_t o1, int64_t c0, int64_t c1) {
    scatter_add(gy.data, idx.data, gx.data, n, m, inner, o0, o1, c0, c1);
  });
  return nullptr;
}

// ================================================================ loss

struct CeArgs {
  F32 logits;
  I32 targets;
  int64_t rows, V;
  int32_t ignore;  // as passed to kernels: V when ignoreIndex is outside int32 (matches no valid target)
  float smoothing;
};

CeArgs read_ce(Call& c, size_t il, size_t it, size_t ir) {
  CeArgs a;
  a.logits = arr<float>(c, il, "logits");
  a.targets = arr<int32_t>(c, it, "targets");
  a.rows = dim(c, ir, "rows");
  a.V = dim(c, ir + 1, "V");
  const double ig = num(c, ir + 2, "ignoreIndex");
  const double s = num(c, ir + 3, "smoothing");
  if (a.V == 0 && a.rows > 0) c.fail("V must be >= 1 (rows %lld)", (long long)a.rows);
  if (a.V > INT32_MAX) c.fail("V = %lld exceeds the int32 index range", (long long)a.V);
  if (ig != std::floor(ig) || !std::isfinite(ig)) c.fail("ignoreIndex must be an integer, got %g", ig);
  if (!(s >= 0 && s <= 1)) c.fail("smoothing must be in [0, 1], got %g", s);
  len_eq(c, a.logits, c.mul(a.rows, a.V), "logits");
  len_eq(c, a.targets, a.rows, "targets");
  for (int64_t r = 0; r < a.rows; r++) {
    const int32_t t = a.targets[r];
    if ((double)t != ig && (t < 0 || t >= a.V)) c.fail("targets[%lld] = %d outside [0, %lld) and not ignoreIndex %g", (long long)r, t, (long long)a.V, ig);
  }
  a.ignore = (ig >= INT32_MIN && ig <= INT32_MAX) ? (int32_t)ig : (int32_t)a.V;
  a.smoothing = (float)s;
  return a;
}

// crossEntropy(logits, targets, loss, lse, rows, V, ignoreIndex, smoothing)
napi_value JsCrossEntropy(Call& c) {
  CeArgs a = read_ce(c, 0, 1, 4);
  F32 loss = arr<float>(c, 2, "loss"), lse = arr<float>(c, 3, "lse");
  len_eq(c, loss, a.rows, "loss");
  len_eq(c, lse, a.rows, "lse");
  const KernelTable& t = kt();
  split(a.rows, per(kDear, a.V), 1, [&](int64_t b, int64_t e) {
    t.ce_fwd(a.logits.data + b * a.V, a.targets.data + b, loss.data + b, lse.data + b, e - b, a.V, a.ignore, a.smoothing);
  });
  return nullptr;
}

// crossEntropyBackward(logits, targets, lse, gLoss, glogits, rows, V, ignoreIndex, smoothing)
napi_value JsCrossEntropyBackward(Call& c) {
  CeArgs a = read_ce(c, 0, 1, 5);
  F32 lse = arr<float>(c, 2, "lse"), gl = arr<float>(c, 3, "gLoss"), g = arr<float>(c, 4, "glogits");
  len_eq(c, lse, a.rows, "lse");
  len_eq(c, gl, a.rows, "gLoss");
  len_eq(c, g, c.mul(a.rows, a.V), "glogits");
  const KernelTable& t = kt();
  split(a.rows, per(kDear, a.V), 1, [&](int64_t b, int64_t e) {
    t.ce_bwd(a.logits.data + b * a.V, a.targets.data + b, lse.data + b, gl.data + b, g.data + b * a.V, e - b, a.V, a.ignore, a.smoothing);
  });
  return nullptr;
}

// ================================================================ scans

// cumsum(x, y, outer, n, inner, reverse)
napi_value JsCumsum(Call& c) {
  F32 x = arr<float>(c, 0, "x"), y = arr<float>(c, 1, "y");
  const int64_t outer = dim(c, 2, "outer"), n = dim(c, 3, "n"), inner = dim(c, 4, "inner");
  const bool reverse = flag(c, 5, "reverse");
  const int64_t total = c.mul({outer, n, inner});
  len_eq(c, x, total, "x");
  len_eq(c, y, total, "y");
  split(outer, per(kCheap, n * inner), 1, [&](int64_t b, int64_t e) { cumsum(x.data, y.data, n, inner, reverse, b, e); });
  return nullptr;
}

// topk(x, rows, n, k, values, indices)
napi_value JsTopk(Call& c) {
  F32 x = arr<float>(c, 0, "x");
  const int64_t rows = dim(c, 1, "rows"), n = dim(c, 2, "n"), k = dim(c, 3, "k");
  F32 values = arr<float>(c, 4, "values");
  I32 indices = arr<int32_t>(c, 5, "indices");
  if (k > n) c.fail("k = %lld exceeds n = %lld", (long long)k, (long long)n);
  if (n > INT32_MAX) c.fail("n = %lld exceeds the int32 index range", (long long)n);
  len_eq(c, x, c.mul(rows, n), "x");
  len_eq(c, values, c.mul(rows, k), "values");
  len_eq(c, indices, c.mul(rows, k), "indices");
  if (rows == 0 || k == 0) return nullptr;
  const int nt = (int)std::min<int64_t>(get_threads(), std::max<int64_t>(1, rows * n / kCheap));
  std::vector<int32_t> scr((size_t)(n * nt));
  if (nt <= 1) {
    topk(x.data, n, k, values.data, indices.data, 0, rows, scr.data());
    return nullptr;
  }
  run_parts(nt, [&](int p) { topk(x.data, n, k, values.data, indices.data, rows * p / nt, rows * (p + 1) / nt, scr.data() + n * p); });
  return nullptr;
}

// ================================================================ optimisers

// adamw(p, g, m, v); params [lr, beta1, beta2, eps, weightDecay, bc1, bc2]
napi_value JsAdamw(Call& c) {
  const double* P = params(c, 7);
  const double lr = P[0], b1 = P[1], b2 = P[2], eps = P[3], wd = P[4], bc1 = P[5], bc2 = P[6];
  F32 p = arr<float>(c, 0, "p"), g = arr<float>(c, 1, "g"), m = arr<float>(c, 2, "m"), v = arr<float>(c, 3, "v");
  const int64_t n = p.len;
  len_eq(c, g, n, "g");
  len_eq(c, m, n, "m");
  len_eq(c, v, n, "v");
  if (!(bc1 > 0) || !(bc2 > 0)) c.fail("bias corrections must be > 0, got bc1 %g, bc2 %g", bc1, bc2);
  AdamW h;
  h.decay = (float)(1 - lr * wd);
  h.beta1 = (float)b1;
  h.beta2 = (float)b2;
  h.c1 = (float)(1 - b1);
  h.c2 = (float)(1 - b2);
  h.step = (float)(lr / bc1);
  h.ibc2 = (float)(1 / bc2);
  h.eps = (float)eps;
  const KernelTable& t = kt();
  split(n, kCheap, 64, [&](int64_t b, int64_t e) { t.adamw(p.data + b, g.data + b, m.data + b, v.data + b, e - b, h); });
  return nullptr;
}

// sgd(p, g, buf | null, lr, momentum, dampening, weightDecay, nesterov, first)
napi_value JsSgdStep(Call& c) {
  F32 p = arr<float>(c, 0, "p"), g = arr<float>(c, 1, "g");
  F32 buf = arr_or_null<float>(c, 2, "buf");
  Sgd h;
  h.lr = (float)num(c, 3, "lr");
  h.momentum = (float)num(c, 4, "momentum");
  h.dampening = (float)num(c, 5, "dampening");
  h.wd = (float)num(c, 6, "weightDecay");
  h.nesterov = flag(c, 7, "nesterov");
  h.first = flag(c, 8, "first");
  const int64_t n = p.len;
  len_eq(c, g, n, "g");
  if (h.momentum != 0) {
    if (buf.null()) c.fail("momentum %g needs a momentum buffer", (double)h.momentum);
    len_eq(c, buf, n, "buf");
  }
  const KernelTable& t = kt();
  split(n, kCheap, 64, [&](int64_t b, int64_t e) { t.sgd(p.data + b, g.data + b, buf.data ? buf.data + b : nullptr, e - b, h); });
  return nullptr;
}

// kernelIsa(): the instruction set the kernels of this file run with now.
napi_value JsKernelIsa(Call& c) { return c.string_value(kt().name); }

}  // namespace

// Exposes this thread's params block as exports.params (a Float64Array over tl_params). The memory
// belongs to the thread, so it stays valid whatever JS does with the array object.
static void export_params(napi_env env, napi_value exports) {
  napi_value ab, ta;
  if (napi_create_external_arraybuffer(env, tl_params, sizeof tl_params, nullptr, nullptr, &ab) != napi_ok) {
    // Runtimes without external buffers: a V8-owned block, referenced for the life of the env.
    void* data = nullptr;
    napi_ref ref;
    if (napi_create_arraybuffer(env, sizeof tl_params, &data, &ab) != napi_ok) return;
    napi_create_reference(env, ab, 1, &ref);
    tl_P = (double*)data;
  }
  if (napi_create_typedarray(env, napi_float64_array, (size_t)kParams, ab, 0, &ta) != napi_ok) return;
  napi_set_named_property(env, exports, "params", ta);
}

void chimera_register_kernels(napi_env env, napi_value exports) {
  export_params(env, exports);
  def(env, exports, "unary", JsUnary);
  def(env, exports, "unaryBackward", JsUnaryBackward);
  def(env, exports, "binary", JsBinary);
  def(env, exports, "where", JsWhere);
  def(env, exports, "copyStrided", JsCopyStrided);
  def(env, exports, "reduce", JsReduce);
  def(env, exports, "argReduce", JsArgReduce);
  def(env, exports, "sumSquares", JsSumSquares);
  def(env, exports, "softmax", JsSoftmax);
  def(env, exports, "softmaxBackward", JsSoftmaxBackward);
  def(env, exports, "layerNorm", JsLayerNorm);
  def(env, exports, "layerNormBackward", JsLayerNormBackward);
  def(env, exports, "rmsNorm", JsRmsNorm);
  def(env, exports, "rmsNormBackward", JsRmsNormBackward);
  def(env, exports, "rope", JsRope);
  def(env, exports, "attention", JsAttention);
  def(env, exports, "attentionBackward", JsAttentionBackward);
  def(env, exports, "im2col", JsIm2col);
  def(env, exports, "col2im", JsCol2im);
  def(env, exports, "depthwiseConv2d", JsDepthwiseConv2d);
  def(env, exports, "depthwiseConv2dBackward", JsDepthwiseConv2dBackward);
  def(env, exports, "pool2d", JsPool2d);
  def(env, exports, "pool2dBackward", JsPool2dBackward);
  def(env, exports, "interpolate", JsInterpolate);
  def(env, exports, "interpolateBackward", JsInterpolateBackward);
  def(env, exports, "indexSelect", JsIndexSelect);
  def(env, exports, "indexAdd", JsIndexAdd);
  def(env, exports, "gather", JsGather);
  def(env, exports, "scatterAdd", JsScatterAdd);
  def(env, exports, "crossEntropy", JsCrossEntropy);
  def(env, exports, "crossEntropyBackward", JsCrossEntropyBackward);
  def(env, exports, "cumsum", JsCumsum);
  def(env, exports, "topk", JsTopk);
  def(env, exports, "adamw", JsAdamw);
  def(env, exports, "sgd", JsSgdStep);
  def(env, exports, "kernelIsa", JsKernelIsa);
}
