// SIMD kernels written once over the vector API of kernels_vec_*.h (W floats per F, masks M,
// loadn/storen for tails) and compiled three times, each inside its own namespace under its own
// `#pragma GCC target` (kernels_avx512.cc, kernels_avx2.cc, kernels_scalar.cc). Nothing here may
// use std:: templates: an instantiation could be shared with (and picked by the linker for)
// another instruction set. Arguments are trusted; the bindings validate them.

static constexpr float kInf = __builtin_huge_valf();
static const float kIota[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// ================================================================ vector math
// Accuracy (f32): exp/log ~1-2 ulp, tanh/sigmoid/erf ~5e-7 relative or better.

// exp(x); inf above ln(FLT_MAX), NaN kept, and exactly 0 below -86.5 (true values < 2.7e-38):
// every lane, used or not, then stays a normal number, because subnormal results cost a
// microcode assist per instruction (masked -inf scores in attention hit this constantly).
static inline F vexp(F x) {
  M under = cmplt(x, fset(-86.5f));
  x = vmin(fset(88.8f), vmax(fset(-86.5f), x));  // constant first: NaN passes through
  F n = vround(x * fset(1.44269504088896341f));
  F r = vfnma(n, fset(0.693359375f), x);
  r = vfnma(n, fset(-2.12194440e-4f), r);
  F p = fset(1.9875691500e-4f);
  p = vfma(p, r, fset(1.3981999507e-3f));
  p = vfma(p, r, fset(8.3334519073e-3f));
  p = vfma(p, r, fset(4.1665795894e-2f));
  p = vfma(p, r, fset(1.6666665459e-1f));
  p = vfma(p, r, fset(5.0000001201e-1f));
  F y = vfma(p, r * r, r + fset(1.f));
  return select(under, fzero(), vldexp(y, n));
}

// Natural log; log(0) = -inf, log(x < 0) = NaN, log(inf) = inf.
static inline F vlog(F x) {
  F e;
  F m = vfrexp(x, &e);
  M big = cmpgt(m, fset(1.41421356f));
  m = select(big, m * fset(0.5f), m);
  e = select(big, e + fset(1.f), e);
  F f = m - fset(1.f);
  F z = f * f;
  F p = fset(7.0376836292e-2f);
  p = vfma(p, f, fset(-1.1514610310e-1f));
  p = vfma(p, f, fset(1.1676998740e-1f));
  p = vfma(p, f, fset(-1.2420140846e-1f));
  p = vfma(p, f, fset(1.4249322787e-1f));
  p = vfma(p, f, fset(-1.6668057665e-1f));
  p = vfma(p, f, fset(2.0000714765e-1f));
  p = vfma(p, f, fset(-2.4999993993e-1f));
  p = vfma(p, f, fset(3.3333331174e-1f));
  F y = p * f * z;
  y = vfma(e, fset(-2.12194440e-4f), y);
  y = vfnma(fset(0.5f), z, y);
  F r = vfma(e, fset(0.693359375f), f + y);
  r = select(cmpeq(x, fset(kInf)), x, r);
  r = select(cmpeq(x, fzero()), fset(-kInf), r);
  return select(cmplt(x, fzero()) | visnan(x), fset(__builtin_nanf("")), r);
}

static inline F vtanh(F x) {
  F ax = vabs(x);
  F z = x * x;
  F p = fset(-5.70498872745e-3f);
  p = vfma(p, z, fset(2.06390887954e-2f));
  p = vfma(p, z, fset(-5.37397155531e-2f));
  p = vfma(p, z, fset(1.33314422036e-1f));
  p = vfma(p, z, fset(-3.33332819422e-1f));
  F small = vfma(p * z, x, x);
  F a10 = vmin(fset(10.f), ax);  // f32 tanh is exactly 1 from ~9.01; keeps exp finite
  F e = vexp(a10 + a10);
  F big = vcopysign(vfnma(fset(2.f), vrecip(e + fset(1.f)), fset(1.f)), x);
  return select(cmplt(ax, fset(0.625f)), small, big);
}

// 1 / (1 + exp(-x)); exactly 0 below -80 (true values < 2e-35), so x * sigmoid(x) -> 0 there.
static inline F vsigmoid(F x) {
  F t = vmin(fset(80.f), vmax(fset(-80.f), x));
  return select(cmplt(x, fset(-80.f)), fzero(), vrecip(fset(1.f) + vexp(vneg(t))));
}

// erf as a rational function (|error| < 5e-7); exactly +-1 where f32 erf rounds to it.
static inline F verf(F x) {
  F c = vmin(fset(4.f), vmax(fset(-4.f), x));
  F z = c * c;
  F p = fset(-2.72614225801306e-10f);
  p = vfma(p, z, fset(2.77068142495902e-08f));
  p = vfma(p, z, fset(-2.10102402082508e-06f));
  p = vfma(p, z, fset(-5.69250639462346e-05f));
  p = vfma(p, z, fset(-7.34990630326855e-04f));
  p = vfma(p, z, fset(-2.95459980854025e-03f));
  p = vfma(p, z, fset(-1.60960333262415e-02f));
  F q = fset(-1.45660718464996e-05f);
  q = vfma(q, z, fset(-2.13374055278905e-04f));
  q = vfma(q, z, fset(-1.68282697438203e-03f));
  q = vfma(q, z, fset(-7.37332916720468e-03f));
  q = vfma(q, z, fset(-1.42647390514189e-02f));
  F r = p * c * vrecip(q);
  return select(cmpgt(vabs(x), fset(3.92f)), vcopysign(fset(1.f), x), r);
}

static constexpr float kSqrtHalf = 0.70710678118654752f;
static constexpr float kInvSqrt2Pi = 0.39894228040143268f;
static constexpr float kGeluK = 0.79788456080286536f;  // sqrt(2 / pi)
static constexpr float kGeluC = 0.044715f;

// ================================================================ unary

struct UNeg { static F f(F x, F, F) { return vneg(x); } };
struct UAbs { static F f(F x, F, F) { return vabs(x); } };
struct UExp { static F f(F x, F, F) { return vexp(x); } };
struct ULog { static F f(F x, F, F) { return vlog(x); } };
struct USqrt { static F f(F x, F, F) { return vsqrt(x); } };
struct URsqrt { static F f(F x, F, F) { return fset(1.f) / vsqrt(x); } };
struct USquare { static F f(F x, F, F) { return x * x; } };
struct URecip { static F f(F x, F, F) { return fset(1.f) / x; } };
struct UTanh { static F f(F x, F, F) { return vtanh(x); } };
struct USigmoid { static F f(F x, F, F) { return vsigmoid(x); } };
struct URelu { static F f(F x, F, F) { return vmax(fzero(), x); } };
struct UGelu { static F f(F x, F, F) { return fset(0.5f) * x * (fset(1.f) + verf(x * fset(kSqrtHalf))); } };
struct UGeluTanh {
  static F f(F x, F, F) {
    F u = fset(kGeluK) * x * vfma(fset(kGeluC), x * x, fset(1.f));
    return fset(0.5f) * x * (fset(1.f) + vtanh(u));
  }
};
struct UQuickGelu { static F f(F x, F, F) { return x * vsigmoid(x * fset(1.702f)); } };
struct USilu { static F f(F x, F, F) { return x * vsigmoid(x); } };
struct UScale { static F f(F x, F p0, F) { return x * p0; } };
struct UAddScalar { static F f(F x, F p0, F) { return x + p0; } };
struct UClamp { static F f(F x, F p0, F p1) { return vmin(p1, vmax(p0, x)); } };
// sign(0) = sign(NaN) = 0, as PyTorch.
struct USign {
  static F f(F x, F, F) { return select(cmpgt(x, fzero()), fset(1.f), select(cmplt(x, fzero()), fset(-1.f), fzero())); }
};
struct UCube { static F f(F x, F, F) { return x * x * x; } };
struct UOne { static F f(F, F, F) { return fset(1.f); } };
struct UCopy { static F f(F x, F, F) { return x; } };

template <class Op>
static void map1(const float* x, float* y, int64_t n, F p0, F p1) {
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, Op::f(load(x + i), p0, p1));
  if (i < n) storen(y + i, Op::f(loadn(x + i, n - i), p0, p1), n - i);
}

static void unary(int op, const float* x, float* y, int64_t n, float p0f, float p1f) {
  F p0 = fset(p0f), p1 = fset(p1f);
  switch (op) {
    case U_NEG: return map1<UNeg>(x, y, n, p0, p1);
    case U_ABS: return map1<UAbs>(x, y, n, p0, p1);
    case U_EXP: return map1<UExp>(x, y, n, p0, p1);
    case U_LOG: return map1<ULog>(x, y, n, p0, p1);
    case U_SQRT: return map1<USqrt>(x, y, n, p0, p1);
    case U_RSQRT: return map1<URsqrt>(x, y, n, p0, p1);
    case U_SQUARE: return map1<USquare>(x, y, n, p0, p1);
    case U_RECIPROCAL: return map1<URecip>(x, y, n, p0, p1);
    case U_SIN: for (int64_t i = 0; i < n; i++) y[i] = sinf(x[i]); return;
    case U_COS: for (int64_t i = 0; i < n; i++) y[i] = cosf(x[i]); return;
    case U_TANH: return map1<UTanh>(x, y, n, p0, p1);
    case U_SIGMOID: return map1<USigmoid>(x, y, n, p0, p1);
    case U_RELU: return map1<URelu>(x, y, n, p0, p1);
    case U_GELU: return map1<UGelu>(x, y, n, p0, p1);
    case U_GELU_TANH: return map1<UGeluTanh>(x, y, n, p0, p1);
    case U_QUICK_GELU: return map1<UQuickGelu>(x, y, n, p0, p1);
    case U_SILU: return map1<USilu>(x, y, n, p0, p1);
    case U_SCALE: return map1<UScale>(x, y, n, p0, p1);
    case U_ADD_SCALAR: return map1<UAddScalar>(x, y, n, p0, p1);
    case U_CLAMP: return map1<UClamp>(x, y, n, p0, p1);
    case U_SIGN: return map1<USign>(x, y, n, p0, p1);
    case U_POW_SCALAR:
      // Exact fast paths where C pow agrees bit-for-bit (or within rounding) with the shortcut.
      if (p0f == 2.f) return map1<USquare>(x, y, n, p0, p1);
      if (p0f == 1.f) return map1<UCopy>(x, y, n, p0, p1);
      if (p0f == 0.f) return map1<UOne>(x, y, n, p0, p1);
      if (p0f == 3.f) return map1<UCube>(x, y, n, p0, p1);
      if (p0f == -1.f) return map1<URecip>(x, y, n, p0, p1);
      for (int64_t i = 0; i < n; i++) y[i] = powf(x[i], p0f);
      return;
    default: return;
  }
}

// ---------------------------------------------------------------- unary backward
// gx = gy * f'(.): ops with kY = true read v = y = f(x), the others v = x (the backend contract
// passes only the buffer the derivative needs; see BACKWARD_USES_Y in the reference).

struct GNeg { static constexpr bool kY = false; static F g(F, F gy, F, F) { return vneg(gy); } };
struct GAbs {
  static constexpr bool kY = false;
  static F g(F x, F gy, F, F) { return select(cmpgt(x, fzero()), gy, select(cmplt(x, fzero()), vneg(gy), fzero())); }
};
struct GExp { static constexpr bool kY = true; static F g(F y, F gy, F, F) { return gy * y; } };
struct GLog { static constexpr bool kY = false; static F g(F x, F gy, F, F) { return gy / x; } };
struct GSqrt { static constexpr bool kY = true; static F g(F y, F gy, F, F) { return gy * fset(0.5f) / y; } };
struct GRsqrt { static constexpr bool kY = true; static F g(F y, F gy, F, F) { return gy * (fset(-0.5f) * y * y * y); } };
struct GSquare { static constexpr bool kY = false; static F g(F x, F gy, F, F) { return gy * (fset(2.f) * x); } };
struct GRecip { static constexpr bool kY = true; static F g(F y, F gy, F, F) { return gy * vneg(y * y); } };
struct GTanh { static constexpr bool kY = true; static F g(F y, F gy, F, F) { return gy * vfnma(y, y, fset(1.f)); } };
struct GSigmoid { static constexpr bool kY = true; static F g(F y, F gy, F, F) { return gy * (y * (fset(1.f) - y)); } };
struct GRelu { static constexpr bool kY = true; static F g(F y, F gy, F, F) { return select(cmpgt(y, fzero()), gy, fzero()); } };
struct GGelu {
  static constexpr bool kY = false;
  static F g(F x, F gy, F, F) {
    F cdf = fset(0.5f) * (fset(1.f) + verf(x * fset(kSqrtHalf)));
    F pdf = fset(kInvSqrt2Pi) * vexp(fset(-0.5f) * x * x);
    return gy * vfma(x, pdf, cdf);
  }
};
struct GGeluTanh {
  static constexpr bool kY = false;
  static F g(F x, F gy, F, F) {
    F x2 = x * x;
    F t = vtanh(fset(kGeluK) * x * vfma(fset(kGeluC), x2, fset(1.f)));
    F du = fset(kGeluK) * vfma(fset(3.f * kGeluC), x2, fset(1.f));
    F d = fset(0.5f) * (fset(1.f) + t) + fset(0.5f) * x * vfnma(t, t, fset(1.f)) * du;
    return gy * d;
  }
};
struct GQuickGelu {
  static constexpr bool kY = false;
  static F g(F x, F gy, F, F) {
    F s = vsigmoid(x * fset(1.702f));
    return gy * vfma(fset(1.702f) * x, s * (fset(1.f) - s), s);
  }
};
struct GSilu {
  static constexpr bool kY = false;
  static F g(F x, F gy, F, F) {
    F s = vsigmoid(x);
    return gy * (s * vfma(x, fset(1.f) - s, fset(1.f)));
  }
};
struct GScale { static constexpr bool kY = false; static F g(F, F gy, F p0, F) { return gy * p0; } };
struct GCopy { static constexpr bool kY = false; static F g(F, F gy, F, F) { return gy; } };
struct GZero { static constexpr bool kY = false; static F g(F, F, F, F) { return fzero(); } };
struct GClamp {
  static constexpr bool kY = false;
  static F g(F x, F gy, F p0, F p1) { return select(cmpge(x, p0) & cmple(x, p1), gy, fzero()); }
};

template <class Op>
static void map_bwd(const float* x, const float* y, const float* gy, float* gx, int64_t n, F p0, F p1) {
  const float* v = Op::kY ? y : x;
  int64_t i = 0;
  for (; i + W <= n; i += W) store(gx + i, Op::g(load(v + i), load(gy + i), p0, p1));
  if (i < n) storen(gx + i, Op::g(loadn(v + i, n - i), loadn(gy + i, n - i), p0, p1), n - i);
}

static void unary_bwd(int op, const float* x, const float* y, const float* gy, float* gx, int64_t n, float p0f, float p1f) {
  F p0 = fset(p0f), p1 = fset(p1f);
  switch (op) {
    case U_NEG: return map_bwd<GNeg>(x, y, gy, gx, n, p0, p1);
    case U_ABS: return map_bwd<GAbs>(x, y, gy, gx, n, p0, p1);
    case U_EXP: return map_bwd<GExp>(x, y, gy, gx, n, p0, p1);
    case U_LOG: return map_bwd<GLog>(x, y, gy, gx, n, p0, p1);
    case U_SQRT: return map_bwd<GSqrt>(x, y, gy, gx, n, p0, p1);
    case U_RSQRT: return map_bwd<GRsqrt>(x, y, gy, gx, n, p0, p1);
    case U_SQUARE: return map_bwd<GSquare>(x, y, gy, gx, n, p0, p1);
    case U_RECIPROCAL: return map_bwd<GRecip>(x, y, gy, gx, n, p0, p1);
    case U_SIN: for (int64_t i = 0; i < n; i++) gx[i] = gy[i] * cosf(x[i]); return;
    case U_COS: for (int64_t i = 0; i < n; i++) gx[i] = gy[i] * -sinf(x[i]); return;
    case U_TANH: return map_bwd<GTanh>(x, y, gy, gx, n, p0, p1);
    case U_SIGMOID: return map_bwd<GSigmoid>(x, y, gy, gx, n, p0, p1);
    case U_RELU: return map_bwd<GRelu>(x, y, gy, gx, n, p0, p1);
    case U_GELU: return map_bwd<GGelu>(x, y, gy, gx, n, p0, p1);
    case U_GELU_TANH: return map_bwd<GGeluTanh>(x, y, gy, gx, n, p0, p1);
    case U_QUICK_GELU: return map_bwd<GQuickGelu>(x, y, gy, gx, n, p0, p1);
    case U_SILU: return map_bwd<GSilu>(x, y, gy, gx, n, p0, p1);
    case U_SCALE: return map_bwd<GScale>(x, y, gy, gx, n, p0, p1);
    case U_ADD_SCALAR: return map_bwd<GCopy>(x, y, gy, gx, n, p0, p1);
    case U_CLAMP: return map_bwd<GClamp>(x, y, gy, gx, n, p0, p1);
    case U_POW_SCALAR:
      if (p0f == 0.f) return map_bwd<GZero>(x, y, gy, gx, n, p0, p1);
      if (p0f == 1.f) return map_bwd<GCopy>(x, y, gy, gx, n, p0, p1);
      if (p0f == 2.f) return map_bwd<GSquare>(x, y, gy, gx, n, p0, p1);
      for (int64_t i = 0; i < n; i++) gx[i] = gy[i] * (p0f * powf(x[i], p0f - 1.f));
      return;
    default: return;
  }
}

// ================================================================ binary / where over Nd

struct BAdd { static F v(F a, F b) { return a + b; } static float s(float a, float b) { return a + b; } };
struct BSub { static F v(F a, F b) { return a - b; } static float s(float a, float b) { return a - b; } };
struct BMul { static F v(F a, F b) { return a * b; } static float s(float a, float b) { return a * b; } };
struct BDiv { static F v(F a, F b) { return a / b; } static float s(float a, float b) { return a / b; } };
// max / min propagate NaN from either side (torch.maximum, Math.max).
struct BMax {
  static F v(F a, F b) { return select(visnan(a), a, vmax(a, b)); }
  static float s(float a, float b) { return (a > b || a != a) ? a : b; }
};
struct BMin {
  static F v(F a, F b) { return select(visnan(a), a, vmin(a, b)); }
  static float s(float a, float b) { return (a < b || a != a) ? a : b; }
};
struct BEq { static F v(F a, F b) { return ones(cmpeq(a, b)); } static float s(float a, float b) { return a == b ? 1.f : 0.f; } };
struct BNe { static F v(F a, F b) { return ones(cmpne(a, b)); } static float s(float a, float b) { return a == b ? 0.f : 1.f; } };
struct BLt { static F v(F a, F b) { return ones(cmplt(a, b)); } static float s(float a, float b) { return a < b ? 1.f : 0.f; } };
struct BLe { static F v(F a, F b) { return ones(cmple(a, b)); } static float s(float a, float b) { return a <= b ? 1.f : 0.f; } };
struct BGt { static F v(F a, F b) { return ones(cmpgt(a, b)); } static float s(float a, float b) { return a > b ? 1.f : 0.f; } };
struct BGe { static F v(F a, F b) { return ones(cmpge(a, b)); } static float s(float a, float b) { return a >= b ? 1.f : 0.f; } };
struct BPow { static float s(float a, float b) { return powf(a, b); } };

// One inner run of n elements with strides sa, sb.
template <class Op>
static void bin_run(const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  int64_t i = 0;
  if (sa == 1 && sb == 1) {
    for (; i + W <= n; i += W) store(o + i, Op::v(load(a + i), load(b + i)));
    if (i < n) storen(o + i, Op::v(loadn(a + i, n - i), loadn(b + i, n - i)), n - i);
  } else if (sa == 1 && sb == 0) {
    F bv = fset(*b);
    for (; i + W <= n; i += W) store(o + i, Op::v(load(a + i), bv));
    if (i < n) storen(o + i, Op::v(loadn(a + i, n - i), bv), n - i);
  } else if (sa == 0 && sb == 1) {
    F av = fset(*a);
    for (; i + W <= n; i += W) store(o + i, Op::v(av, load(b + i)));
    if (i < n) storen(o + i, Op::v(av, loadn(b + i, n - i)), n - i);
  } else {
    for (; i < n; i++) o[i] = Op::s(a[i * sa], b[i * sb]);
  }
}

template <>
void bin_run<BPow>(const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  for (int64_t i = 0; i < n; i++) o[i] = powf(a[i * sa], b[i * sb]);
}

// Walks elements [e0, e1) of nd's row-major order, calling run(off, col, out, len) per inner run;
// off[k] is operand k's offset at column 0 of the run's row.
template <int NOP, class Run>
static void nd_walk(const Nd& nd, float* out, int64_t e0, int64_t e1, const Run& run) {
  const int R = nd.rank;
  const int64_t inner = nd.shape[R - 1];
  if (inner <= 0 || e0 >= e1) return;
  int64_t idx[kMaxRank];
  int64_t off[3] = {0, 0, 0};
  int64_t row = e0 / inner, col = e0 % inner;
  for (int d = R - 2; d >= 0; d--) {
    idx[d] = row % nd.shape[d];
    row /= nd.shape[d];
    for (int k = 0; k < NOP; k++) off[k] += idx[d] * nd.st[k][d];
  }
  int64_t e = e0;
  for (;;) {
    int64_t len = imin(inner - col, e1 - e);
    run(off, col, out + e, len);
    e += len;
    if (e >= e1) break;
    col = 0;
    for (int d = R - 2; d >= 0; d--) {
      for (int k = 0; k < NOP; k++) off[k] += nd.st[k][d];
      if (++idx[d] < nd.shape[d]) break;
      for (int k = 0; k < NOP; k++) off[k] -= nd.st[k][d] * nd.shape[d];
      idx[d] = 0;
    }
  }
}

template <class Op>
struct BinRun {
  const float* A; const float* B; int64_t sa, sb;
  void operator()(const int64_t* off, int64_t col, float* o, int64_t len) const {
    bin_run<Op>(A + off[0] + col * sa, sa, B + off[1] + col * sb, sb, o, len);
  }
};

template <class Op>
static void bin_nd(const Nd& nd, float* out, int64_t e0, int64_t e1) {
  const BinRun<Op> run{(const float*)nd.base[0], (const float*)nd.base[1], nd.st[0][nd.rank - 1], nd.st[1][nd.rank - 1]};
  nd_walk<2>(nd, out, e0, e1, run);
}

static void binary(int op, const Nd& nd, float* out, int64_t e0, int64_t e1) {
  switch (op) {
    case B_ADD: return bin_nd<BAdd>(nd, out, e0, e1);
    case B_SUB: return bin_nd<BSub>(nd, out, e0, e1);
    case B_MUL: return bin_nd<BMul>(nd, out, e0, e1);
    case B_DIV: return bin_nd<BDiv>(nd, out, e0, e1);
    case B_POW: return bin_nd<BPow>(nd, out, e0, e1);
    case B_MAX: return bin_nd<BMax>(nd, out, e0, e1);
    case B_MIN: return bin_nd<BMin>(nd, out, e0, e1);
    case B_EQ: return bin_nd<BEq>(nd, out, e0, e1);
    case B_NE: return bin_nd<BNe>(nd, out, e0, e1);
    case B_LT: return bin_nd<BLt>(nd, out, e0, e1);
    case B_LE: return bin_nd<BLe>(nd, out, e0, e1);
    case B_GT: return bin_nd<BGt>(nd, out, e0, e1);
    case B_GE: return bin_nd<BGe>(nd, out, e0, e1);
    default: return;
  }
}

struct WhereRun {
  const uint8_t* C; const float* A; const float* B; int64_t sc, sa, sb;
  bool vec;  // cond contiguous, a and b contiguous or broadcast
  void operator()(const int64_t* off, int64_t col, float* o, int64_t n) const {
    const uint8_t* c = C + off[0] + col * sc;
    const float* a = A + off[1] + col * sa;
    const float* b = B + off[2] + col * sb;
    int64_t i = 0;
    if (vec) {
      for (; i + W <= n; i += W) {
        F av = sa ? load(a + i) : fset(*a);
        F bv = sb ? load(b + i) : fset(*b);
        store(o + i, select(u8mask(c + i), av, bv));
      }
      if (i < n) {
        F av = sa ? loadn(a + i, n - i) : fset(*a);
        F bv = sb ? loadn(b + i, n - i) : fset(*b);
        storen(o + i, select(u8maskn(c + i, n - i), av, bv), n - i);
      }
    } else {
      for (; i < n; i++) o[i] = c[i * sc] ? a[i * sa] : b[i * sb];
    }
  }
};

// Operands: 0 = cond (u8), 1 = a, 2 = b.
static void where(const Nd& nd, float* out, int64_t e0, int64_t e1) {
  const int R = nd.rank - 1;
  WhereRun run{(const uint8_t*)nd.base[0], (const float*)nd.base[1], (const float*)nd.base[2], nd.st[0][R], nd.st[1][R], nd.st[2][R], false};
  run.vec = run.sc == 1 && (run.sa == 0 || run.sa == 1) && (run.sb == 0 || run.sb == 1);
  nd_walk<3>(nd, out, e0, e1, run);
}

// ================================================================ reductions

// Sum of a contiguous span: f32 vector partials per 1024-element block, blocks summed in f64.
static double sum_span(const float* x, int64_t n) {
  double tot = 0;
  int64_t i = 0;
  while (i < n) {
    int64_t end = imin(n, i + 1024);
    F a0 = fzero(), a1 = fzero(), a2 = fzero(), a3 = fzero();
    for (; i + 4 * W <= end; i += 4 * W) {
      a0 = a0 + load(x + i);
      a1 = a1 + load(x + i + W);
      a2 = a2 + load(x + i + 2 * W);
      a3 = a3 + load(x + i + 3 * W);
    }
    for (; i + W <= end; i += W) a0 = a0 + load(x + i);
    if (i < end) { a1 = a1 + loadn(x + i, end - i); i = end; }
    tot += (double)hsum((a0 + a1) + (a2 + a3));
  }
  return tot;
}

// max (or min) of a contiguous span; NaN if any element is NaN; -inf (+inf) when empty.
static float minmax_span(bool max, const float* x, int64_t n) {
  const float init = max ? -kInf : kInf;
  F a0 = fset(init), a1 = fset(init);
  M nan = cmplt(fzero(), fzero());
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    F u = load(x + i), v = load(x + i + W);
    nan = nan | visnan(u) | visnan(v);
    a0 = max ? vmax(a0, u) : vmin(a0, u);
    a1 = max ? vmax(a1, v) : vmin(a1, v);
  }
  for (; i < n; i += W) {
    F u = i + W <= n ? load(x + i) : loadn(x + i, n - i, init);
    nan = nan | visnan(u);
    a0 = max ? vmax(a0, u) : vmin(a0, u);
  }
  if (any(nan)) return __builtin_nanf("");
  return max ? hmax(vmax(a0, a1)) : hmin(vmin(a0, a1));
}

static void reduce_rows(int op, const float* x, float* out, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    const float* p = x + r * n;
    out[r] = op == R_SUM ? (float)sum_span(p, n) : minmax_span(op == R_MAX, p, n);
  }
}

static void reduce_cols(int op, const float* x, float* out, int64_t n, int64_t inner, int64_t u0, int64_t u1) {
  constexpr int NVc = (int)(kReduceCols / W);
  const int64_t nb = (inner + kReduceCols - 1) / kReduceCols;
  const float init = op == R_SUM ? 0.f : op == R_MAX ? -kInf : kInf;
  for (int64_t u = u0; u < u1; u++) {
    const int64_t o = u / nb, c0 = (u % nb) * kReduceCols;
    const int64_t cw = imin(kReduceCols, inner - c0);
    const int nv = (int)((cw + W - 1) / W);
    const int64_t last = cw - (int64_t)(nv - 1) * W;
    const float* base = x + o * n * inner + c0;
    F acc[NVc];
    M nan[NVc];
    double dacc[kReduceCols];
    for (int v = 0; v < NVc; v++) { acc[v] = fset(init); nan[v] = cmplt(fzero(), fzero()); }
    for (int64_t c = 0; c < cw; c++) dacc[c] = 0;
    for (int64_t k = 0; k < n; k++) {
      const float* row = base + k * inner;
      for (int v = 0; v < nv; v++) {
        F xv = (v == nv - 1 && last < W) ? loadn(row + v * W, last, init) : load(row + v * W);
        if (op == R_SUM) acc[v] = acc[v] + xv;
        else {
          nan[v] = nan[v] | visnan(xv);
          acc[v] = op == R_MAX ? vmax(acc[v], xv) : vmin(acc[v], xv);
        }
      }
      if (op == R_SUM && (k & 255) == 255) {  // flush f32 partials into f64 every 256 rows
        float tmp[kReduceCols];
        for (int v = 0; v < nv; v++) { store(tmp + v * W, acc[v]); acc[v] = fzero(); }
        for (int64_t c = 0; c < cw; c++) dacc[c] += tmp[c];
      }
    }
    float tmp[kReduceCols];
    for (int v = 0; v < nv; v++) {
      if (op != R_SUM) acc[v] = select(nan[v], fset(__builtin_nanf("")), acc[v]);
      store(tmp + v * W, acc[v]);
    }
    float* dst = out + o * inner + c0;
    if (op == R_SUM) for (int64_t c = 0; c < cw; c++) dst[c] = (float)(dacc[c] + tmp[c]);
    else for (int64_t c = 0; c < cw; c++) dst[c] = tmp[c];
  }
}

static double sum_squares(const float* x, int64_t n) {
  D2 a = d2zero(), b = d2zero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    a = d2sqacc(a, load(x + i));
    b = d2sqacc(b, load(x + i + W));
  }
  for (; i + W <= n; i += W) a = d2sqacc(a, load(x + i));
  if (i < n) b = d2sqacc(b, loadn(x + i, n - i));
  return d2sum(a) + d2sum(b);
}

// out[r] = sum_i a[r, i] * b[r, i].
static void rowdot(const float* a, const float* b, float* out, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    const float* x = a + r * n;
    const float* y = b + r * n;
    F s0 = fzero(), s1 = fzero();
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = vfma(load(x + i), load(y + i), s0);
      s1 = vfma(load(x + i + W), load(y + i + W), s1);
    }
    for (; i + W <= n; i += W) s0 = vfma(load(x + i), load(y + i), s0);
    if (i < n) s1 = vfma(loadn(x + i, n - i), loadn(y + i, n - i), s1);
    out[r] = hsum(s0 + s1);
  }
}

// y[i] += x[i].
static void acc(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, load(y + i) + load(x + i));
  if (i < n) storen(y + i, loadn(y + i, n - i) + loadn(x + i, n - i), n - i);
}

// y[i] = x[i] * s.
static void scale_span(const float* x, float* y, int64_t n, float s) {
  F sv = fset(s);
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, load(x + i) * sv);
  if (i < n) storen(y + i, loadn(x + i, n - i) * sv, n - i);
}

// ================================================================ softmax

static void softmax(const float* x, float* y, int64_t rows, int64_t n, bool log) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    F m = fset(minmax_span(true, xr, n));
    F s0 = fzero(), s1 = fzero();
    int64_t i = 0;
    if (log) {
      for (; i + W <= n; i += W) s0 = s0 + vexp(load(xr + i) - m);
      if (i < n) s1 = vexp(loadn(xr + i, n - i, -kInf) - m);
      F lse = m + vlog(fset(hsum(s0 + s1)));
      for (i = 0; i + W <= n; i += W) store(yr + i, load(xr + i) - lse);
      if (i < n) storen(yr + i, loadn(xr + i, n - i) - lse, n - i);
    } else {
      for (; i + W <= n; i += W) {
        F e = vexp(load(xr + i) - m);
        store(yr + i, e);
        s0 = s0 + e;
      }
      if (i < n) {
        F e = vexp(loadn(xr + i, n - i, -kInf) - m);
        storen(yr + i, e, n - i);
        s1 = e;
      }
      scale_span(yr, yr, n, 1.f / hsum(s0 + s1));
    }
  }
}

static void softmax_bwd(const float* y, const float* gy, float* gx, int64_t rows, int64_t n, bool log) {
  for (int64_t r = 0; r < rows; r++) {
    const float* yr = y + r * n;
    const float* gr = gy + r * n;
    float* xr = gx + r * n;
    int64_t i = 0;
    if (log) {
      F s = fset((float)sum_span(gr, n));
      for (; i + W <= n; i += W) store(xr + i, load(gr + i) - vexp(load(yr + i)) * s);
      if (i < n) storen(xr + i, loadn(gr + i, n - i) - vexp(loadn(yr + i, n - i)) * s, n - i);
    } else {
      float d;
      rowdot(yr, gr, &d, 1, n);
      F dv = fset(d);
      for (; i + W <= n; i += W) store(xr + i, load(yr + i) * (load(gr + i) - dv));
      if (i < n) storen(xr + i, loadn(yr + i, n - i) * (loadn(gr + i, n - i) - dv), n - i);
    }
  }
}

// ================================================================ normalisation

static void layernorm(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float mu = (float)(sum_span(xr, n) / (double)n);
    F mv = fset(mu);
    F v0 = fzero(), v1 = fzero();
    int64_t i = 0;
    for (; i + W <= n; i += W) { F d = load(xr + i) - mv; v0 = vfma(d, d, v0); }
    if (i < n) { F d = loadn(xr + i, n - i, mu) - mv; v1 = d * d; }
    const float rs = 1.f / sqrtf(hsum(v0 + v1) / (float)n + eps);
    mean[r] = mu;
    rstd[r] = rs;
    F rv = fset(rs);
    for (i = 0; i < n; i += W) {
      int64_t c = imin(W, n - i);
      F h = (c == W ? load(xr + i) : loadn(xr + i, c)) - mv;
      h = h * rv;
      if (w) h = h * (c == W ? load(w + i) : loadn(w + i, c));
      if (b) h = h + (c == W ? load(b + i) : loadn(b + i, c));
      if (c == W) store(yr + i, h); else storen(yr + i, h, c);
    }
  }
}

static void layernorm_bwd(const float* x, const float* w, const float* mean, const float* rstd, const float* gy, float* gx, float* gw, float* gb, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * n;
    const float* gr = gy + r * n;
    float* out = gx + r * n;
    F mv = fset(mean[r]), rv = fset(rstd[r]);
    F sg = fzero(), sgh = fzero();
    for (int64_t i = 0; i < n; i += W) {
      int64_t c = imin(W, n - i);
      F xv = c == W ? load(xr + i) : loadn(xr + i, c);
      F g = c == W ? load(gr + i) : loadn(gr + i, c);
      F h = (xv - mv) * rv;
      if (gw) { F a = c == W ? load(gw + i) : loadn(gw + i, c); a = vfma(g, h, a); if (c == W) store(gw + i, a); else storen(gw + i, a, c); }
      if (gb) { F a = c == W ? load(gb + i) : loadn(gb + i, c); a = a + g; if (c == W) store(gb + i, a); else storen(gb + i, a, c); }
      if (w) g = g * (c == W ? load(w + i) : loadn(w + i, c));
      sg = sg + g;
      sgh = vfma(g, h, sgh);
    }
    const float inv = 1.f / (float)n;
    F a = fset(hsum(sg) * inv), bq = fset(hsum(sgh) * inv);
    for (int64_t i = 0; i < n; i += W) {
      int64_t c = imin(W, n - i);
      F xv = c == W ? load(xr + i) : loadn(xr + i, c);
      F g = c == W ? load(gr + i) : loadn(gr + i, c);
      if (w) g = g * (c == W ? load(w + i) : loadn(w + i, c));
      F h = (xv - mv) * rv;
      F d = rv * (g - a - h * bq);
      if (c == W) store(out + i, d); else storen(out + i, d, c);
    }
  }
}

static void rmsnorm(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    F s0 = fzero(), s1 = fzero();
    int64_t i = 0;
    for (; i + W <= n; i += W) { F v = load(xr + i); s0 = vfma(v, v, s0); }
    if (i < n) { F v = loadn(xr + i, n - i); s1 = v * v; }
    const float rs = 1.f / sqrtf(hsum(s0 + s1) / (float)n + eps);
    rstd[r] = rs;
    F rv = fset(rs);
    for (i = 0; i < n; i += W) {
      int64_t c = imin(W, n - i);
      F h = (c == W ? load(xr + i) : loadn(xr + i, c)) * rv;
      if (w) h = h * (c == W ? load(w + i) : loadn(w + i, c));
      if (c == W) store(yr + i, h); else storen(yr + i, h, c);
    }
  }
}

static void rmsnorm_bwd(const float* x, const float* w, const float* rstd, const float* gy, float* gx, float* gw, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * n;
    const float* gr = gy + r * n;
    float* out = gx + r * n;
    const float rs = rstd[r];
    F rv = fset(rs);
    F s = fzero();
    for (int64_t i = 0; i < n; i += W) {
      int64_t c = imin(W, n - i);
      F xv = c == W ? load(xr + i) : loadn(xr + i, c);
      F g = c == W ? load(gr + i) : loadn(gr + i, c);
      if (gw) { F a = c == W ? load(gw + i) : loadn(gw + i, c); a = vfma(g, xv * rv, a); if (c == W) store(gw + i, a); else storen(gw + i, a, c); }
      if (w) g = g * (c == W ? load(w + i) : loadn(w + i, c));
      s = vfma(g, xv, s);  // tail lanes load as 0
    }
    // gx = rs * (g - x * rs^2 * mean(g * x))
    F k = fset(rs * rs * hsum(s) / (float)n);
    for (int64_t i = 0; i < n; i += W) {
      int64_t c = imin(W, n - i);
      F xv = c == W ? load(xr + i) : loadn(xr + i, c);
      F g = c == W ? load(gr + i) : loadn(gr + i, c);
      if (w) g = g * (c == W ? load(w + i) : loadn(w + i, c));
      F d = rv * vfnma(xv, k, g);
      if (c == W) store(out + i, d); else storen(out + i, d, c);
    }
  }
}

// ================================================================ rotary embedding

static void rope(const float* x, float* y, const float* cs, const float* sn, int64_t r0, int64_t r1, int64_t T, int64_t D, int64_t rot, bool interleaved, bool inverse) {
  const int64_t half = rot / 2;
  const F sgn = fset(inverse ? -1.f : 1.f);
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    const float* c = cs + (r % T) * half;
    const float* s = sn + (r % T) * half;
    if (!interleaved) {
      for (int64_t i = 0; i < half; i += W) {
        int64_t k = imin(W, half - i);
        F a = k == W ? load(xr + i) : loadn(xr + i, k);
        F b = k == W ? load(xr + i + half) : loadn(xr + i + half, k);
        F cv = k == W ? load(c + i) : loadn(c + i, k);
        F sv = (k == W ? load(s + i) : loadn(s + i, k)) * sgn;
        F ya = vfnma(b, sv, a * cv), yb = vfma(a, sv, b * cv);
        if (k == W) { store(yr + i, ya); store(yr + i + half, yb); }
        else { storen(yr + i, ya, k); storen(yr + i + half, yb, k); }
      }
    } else {
      const float sg = inverse ? -1.f : 1.f;
      for (int64_t i = 0; i < half; i++) {
        float a = xr[2 * i], b = xr[2 * i + 1], cv = c[i], sv = s[i] * sg;
        yr[2 * i] = a * cv - b * sv;
        yr[2 * i + 1] = b * cv + a * sv;
      }
    }
    if (yr != xr)
      for (int64_t i = rot; i < D; i++) yr[i] = xr[i];
  }
}

// ================================================================ broadcast micro-kernel
// C[m, 0..N) (=, or += when acc) sum_k A[m*am + k*ak] * B[k*ldb + 0..N), m in [0, M).
// A is read one scalar at a time (any layout), B rows and C rows are contiguous.

// One MR x (NV vectors) block of C; TAIL: the last vector holds only `last` (< W) columns.
template <int MR, int NV, bool TAIL>
static inline void gbc_tile(int64_t K, const float* A, int64_t am, int64_t ak, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t last, bool accum) {
  F c[MR][NV];
#pragma GCC unroll 8
  for (int m = 0; m < MR; m++)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      const float* p = C + m * ldc + v * W;
      c[m][v] = !accum ? fzero() : (TAIL && v == NV - 1) ? loadn(p, last) : load(p);
    }
  for (int64_t k = 0; k < K; k++) {
    const float* bk = B + k * ldb;
    F b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) b[v] = (TAIL && v == NV - 1) ? loadn(bk + v * W, last) : load(bk + v * W);
    const float* ak_ = A + k * ak;
#pragma GCC unroll 8
    for (int m = 0; m < MR; m++) {
      const F a = fset(ak_[m * am]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) c[m][v] = vfma(a, b[v], c[m][v]);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; m++)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      float* p = C + m * ldc + v * W;
      if (TAIL && v == NV - 1) storen(p, c[m][v], last);
      else store(p, c[m][v]);
    }
}

template <int MR, int NV>
static inline void gbc_tail(int64_t K, const float* A, int64_t am, int64_t ak, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t last, bool accum) {
  if (last == W) gbc_tile<MR, NV, false>(K, A, am, ak, B, ldb, C, ldc, last, accum);
  else gbc_tile<MR, NV, true>(K, A, am, ak, B, ldb, C, ldc, last, accum);
}

template <int MR>
static inline void gbc_nv(int nv, int64_t K, const float* A, int64_t am, int64_t ak, const float* B, int64_t ldb, float* C, int64_t ldc, int64_t last, bool accum) {
  switch (nv) {
    case 1: return gbc_tail<MR, 1>(K, A, am, ak, B, ldb, C, ldc, last, accum);
    case 2: if constexpr (kNV >= 2) return gbc_tail<MR, 2>(K, A, am, ak, B, ldb, C, ldc, last, accum); return;
    case 3: if constexpr (kNV >= 3) return gbc_tail<MR, 3>(K, A, am, ak, B, ldb, C, ldc, last, accum); return;
    case 4: if constexpr (kNV >= 4) return gbc_tail<MR, 4>(K, A, am, ak, B, ldb, C, ldc, last, accum); return;
    default: return;
  }
}

static void gemm_bc(int64_t M, int64_t N, int64_t K, const float* A, int64_t am, int64_t ak, const float* B, int64_t ldb, float* C, int64_t ldc, bool accum) {
  static_assert(kMR == 4 && kNV <= 4, "gemm_bc dispatch covers kMR == 4, kNV <= 4");
  const int64_t CW = (int64_t)kNV * W;
  for (int64_t n0 = 0; n0 < N; n0 += CW) {
    const int64_t nn = imin(CW, N - n0);
    const int nv = (int)((nn + W - 1) / W);
    const int64_t last = nn - (int64_t)(nv - 1) * W;
    for (int64_t m0 = 0; m0 < M; m0 += kMR) {
      const float* a = A + m0 * am;
      float* c = C + m0 * ldc + n0;
      switch (imin(kMR, M - m0)) {
        case 4: gbc_nv<4>(nv, K, a, am, ak, B + n0, ldb, c, ldc, last, accum); break;
        case 3: gbc_nv<3>(nv, K, a, am, ak, B + n0, ldb, c, ldc, last, accum); break;
        case 2: gbc_nv<2>(nv, K, a, am, ak, B + n0, ldb, c, ldc, last, accum); break;
        default: gbc_nv<1>(nv, K, a, am, ak, B + n0, ldb, c, ldc, last, accum); break;
      }
    }
  }
}

// out[0..N) = sum_j p[j] * V[j*ldv + 0..N) for j < n: one row of P @ V. Keys are split into four
// phases with their own accumulators so that FMA latency does not serialise the sum.
template <int NV, bool TAIL>
static inline void row_pv_chunk(const float* p, const float* V, int64_t ldv, int64_t n, float* out, int64_t last) {
  F acc[4][NV];
#pragma GCC unroll 4
  for (int ph = 0; ph < 4; ph++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[ph][v] = fzero();
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
#pragma GCC unroll 4
    for (int ph = 0; ph < 4; ph++) {
      const F pj = fset(p[j + ph]);
      const float* vr = V + (j + ph) * ldv;
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[ph][v] = vfma(pj, (TAIL && v == NV - 1) ? loadn(vr + v * W, last) : load(vr + v * W), acc[ph][v]);
    }
  }
  for (; j < n; j++) {
    const F pj = fset(p[j]);
    const float* vr = V + j * ldv;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[0][v] = vfma(pj, (TAIL && v == NV - 1) ? loadn(vr + v * W, last) : load(vr + v * W), acc[0][v]);
  }
#pragma GCC unroll 4
  for (int v = 0; v < NV; v++) {
    const F r = (acc[0][v] + acc[1][v]) + (acc[2][v] + acc[3][v]);
    if (TAIL && v == NV - 1) storen(out + v * W, r, last);
    else store(out + v * W, r);
  }
}

static void row_pv(const float* p, const float* V, int64_t ldv, int64_t n, int64_t N, float* out) {
  constexpr int64_t CW = 4 * W;
  for (int64_t c0 = 0; c0 < N; c0 += CW) {
    const int64_t cw = imin(CW, N - c0);
    const int nv = (int)((cw + W - 1) / W);
    const int64_t last = cw - (int64_t)(nv - 1) * W;
    const bool tail = last < W;
    const float* vc = V + c0;
    float* oc = out + c0;
    switch (nv * 2 + (tail ? 1 : 0)) {
      case 2: row_pv_chunk<1, false>(p, vc, ldv, n, oc, last); break;
      case 3: row_pv_chunk<1, true>(p, vc, ldv, n, oc, last); break;
      case 4: row_pv_chunk<2, false>(p, vc, ldv, n, oc, last); break;
      case 5: row_pv_chunk<2, true>(p, vc, ldv, n, oc, last); break;
      case 6: row_pv_chunk<3, false>(p, vc, ldv, n, oc, last); break;
      case 7: row_pv_chunk<3, true>(p, vc, ldv, n, oc, last); break;
      case 8: row_pv_chunk<4, false>(p, vc, ldv, n, oc, last); break;
      default: row_pv_chunk<4, true>(p, vc, ldv, n, oc, last); break;
    }
  }
}

// ================================================================ attention forward
// Visibility: key j is visible to query i iff (!causal || j <= i + Tk - Tq) && mask[...] != 0.

// Few query rows (decode): dot products straight from K rows, exact two-pass softmax per row.
// sc holds Tk floats.
static void attn_fwd_row(const Attn& a, int64_t b, int64_t h, int64_t i, float* out, float* lse, float* sc) {
  const int64_t D = a.D, Dv = a.Dv, Tk = a.Tk;
  const int64_t hk = h / (a.H / a.Hkv);
  const int64_t lim = a.causal ? imin(Tk, i + (Tk - a.Tq) + 1) : Tk;
  float* orow = out + ((b * a.H + h) * a.Tq + i) * Dv;
  float* lrow = lse + (b * a.H + h) * a.Tq + i;
  if (lim <= 0) {
    for (int64_t d = 0; d < Dv; d++) orow[d] = 0.f;
    *lrow = -kInf;
    return;
  }
  const float* q = a.q + ((b * a.H + h) * a.Tq + i) * D;
  const float* k = a.k + (b * a.Hkv + hk) * Tk * D;
  const float* v = a.v + (b * a.Hkv + hk) * Tk * Dv;
  const F scale = fset(a.scale);
  for (int64_t j = 0; j < lim; j += W) {
    const int64_t nj = imin(W, lim - j);
    F acc[W];
    const float* kr[W];
    for (int t = 0; t < W; t++) { acc[t] = fzero(); kr[t] = k + (j + (t < nj ? t : 0)) * D; }
    int64_t d = 0;
    for (; d + W <= D; d += W) {
      F qv = load(q + d);
      for (int t = 0; t < W; t++) acc[t] = vfma(qv, load(kr[t] + d), acc[t]);
    }
    if (d < D) {
      F qv = loadn(q + d, D - d);
      for (int t = 0; t < W; t++) acc[t] = vfma(qv, loadn(kr[t] + d, D - d), acc[t]);
    }
    F s = transpose_sum(acc) * scale;
    if (nj == W) store(sc + j, s); else storen(sc + j, s, nj);
  }
  if (a.mask) {
    const uint8_t* mr = a.mask + b * a.msB + h * a.msH + i * a.msQ;
    for (int64_t j = 0; j < lim; j++)
      if (!mr[j]) sc[j] = -kInf;
  }
  const float m = minmax_span(true, sc, lim);
  if (!(m > -kInf)) {
    for (int64_t d = 0; d < Dv; d++) orow[d] = 0.f;
    *lrow = -kInf;
    return;
  }
  F mv = fset(m), l0 = fzero();
  int64_t j = 0;
  for (; j + W <= lim; j += W) { F p = vexp(load(sc + j) - mv); store(sc + j, p); l0 = l0 + p; }
  if (j < lim) { F p = vexp(loadn(sc + j, lim - j, -kInf) - mv); storen(sc + j, p, lim - j); l0 = l0 + p; }
  const float l = hsum(l0);
  row_pv(sc, v, Dv, lim, Dv, orow);
  scale_span(orow, orow, Dv, 1.f / l);
  *lrow = m + logf(l);
}

// A block of nr (<= kAttnQB) query rows starting at i0, queries in vector lanes:
// S^T [keys, rows] = K_tile @ (scale * Q)^T, online softmax down the key axis.
static void attn_fwd_block(const Attn& a, int64_t b, int64_t h, int64_t i0, int64_t nr, float* out, float* lse, float* scratch) {
  constexpr int64_t QB = kAttnQB, KT = kAttnKT;
  const int64_t D = a.D, Dv = a.Dv, Tk = a.Tk, off = Tk - a.Tq;
  const int64_t hk = h / (a.H / a.Hkv);
  const int64_t bh = b * a.H + h;
  float* qt = scratch;        // [D, QB]
  float* st = qt + D * QB;    // [KT, QB]
  float* o = st + KT * QB;    // [QB, Dv]
  float* mr = o + QB * Dv;    // [QB] running max
  float* lr = mr + QB;        // [QB] running sum
  float* al = lr + QB;        // [QB] rescale factor of the current tile
  const float* q = a.q + (bh * a.Tq + i0) * D;
  const float* k = a.k + (b * a.Hkv + hk) * Tk * D;
  const float* v = a.v + (b * a.Hkv + hk) * Tk * Dv;
  const int64_t nvec = (nr + W - 1) / W;
  for (int64_t d = 0; d < D; d++) {
    float* dst = qt + d * QB;
    for (int64_t r = 0; r < nr; r++) dst[r] = q[r * D + d] * a.scale;
    for (int64_t r = nr; r < nvec * W; r++) dst[r] = 0.f;
  }
  for (int64_t r = 0; r < nr * Dv; r++) o[r] = 0.f;
  for (int64_t r = 0; r < nvec * W; r++) { mr[r] = -kInf; lr[r] = 0.f; st[r] = 0.f; }
  const int64_t jend = a.causal ? imin(Tk, i0 + nr + off) : Tk;
  const uint8_t* mbase = a.mask ? a.mask + b * a.msB + h * a.msH : nullptr;
  for (int64_t j0 = 0; j0 < jend; j0 += KT) {
    const int64_t nk = imin(KT, jend - j0);
    gemm_bc(nk, nr, D, k + j0 * D, D, 1, qt, QB, st, QB, false);
    if (a.causal && j0 + nk - 1 > i0 + off) {
      for (int64_t j = 0; j < nk; j++) {
        const int64_t first = imin(nr, j0 + j - off - i0);  // rows below `first` cannot see key j
        for (int64_t r = 0; r < first; r++) st[j * QB + r] = -kInf;
      }
    }
    if (mbase) {
      for (int64_t r = 0; r < nr; r++) {
        const uint8_t* mrow = mbase + (i0 + r) * a.msQ + j0;
        for (int64_t j = 0; j < nk; j++)
          if (!mrow[j]) st[j * QB + r] = -kInf;
      }
    }
    for (int64_t c = 0; c < nvec; c++) {
      float* col = st + c * W;
      F mo = load(mr + c * W), mt = fset(-kInf);
      for (int64_t j = 0; j < nk; j++) mt = vmax(mt, load(col + j * QB));
      F mn = vmax(mo, mt);
      F ms = select(cmpeq(mn, fset(-kInf)), fzero(), mn);  // rows with nothing visible yet
      F alpha = vexp(mo - ms);
      F ls = fzero();
      for (int64_t j = 0; j < nk; j++) {
        F p = vexp(load(col + j * QB) - ms);
        store(col + j * QB, p);
        ls = ls + p;
      }
      store(lr + c * W, vfma(load(lr + c * W), alpha, ls));
      store(mr + c * W, mn);
      store(al + c * W, alpha);
    }
    for (int64_t r = 0; r < nr; r++)
      if (al[r] != 1.f) scale_span(o + r * Dv, o + r * Dv, Dv, al[r]);
    gemm_bc(nr, Dv, nk, st, 1, QB, v + j0 * Dv, Dv, o, Dv, true);
  }
  for (int64_t r = 0; r < nr; r++) {
    float* orow = out + (bh * a.Tq + i0 + r) * Dv;
    const float l = lr[r];
    if (l > 0.f) {
      scale_span(o + r * Dv, orow, Dv, 1.f / l);
      lse[bh * a.Tq + i0 + r] = mr[r] + logf(l);
    } else {
      for (int64_t d = 0; d < Dv; d++) orow[d] = 0.f;
      lse[bh * a.Tq + i0 + r] = -kInf;
    }
  }
}

static void attn_fwd(const Attn& a, float* out, float* lse, int64_t u0, int64_t u1, float* scratch) {
  const int64_t nqb = (a.Tq + kAttnQB - 1) / kAttnQB;
  for (int64_t u = u0; u < u1; u++) {
    const int64_t bh = u / nqb, i0 = (u % nqb) * kAttnQB;
    const int64_t b = bh / a.H, h = bh % a.H;
    const int64_t nr = imin(kAttnQB, a.Tq - i0);
    if (nr * 2 < W) {
      float* sc = scratch + a.D * kAttnQB + (int64_t)kAttnKT * kAttnQB + kAttnQB * a.Dv + 3 * kAttnQB;
      for (int64_t r = 0; r < nr; r++) attn_fwd_row(a, b, h, i0 + r, out, lse, sc);
    } else {
      attn_fwd_block(a, b, h, i0, nr, out, lse, scratch);
    }
  }
}

// ================================================================ attention backward
// Per unit: one kv head g of batch b and a tile of nk keys [j0, j0 + nk). For every query head
// of the group and every block of query rows that can see the tile (queries in vector lanes):
//   S^T = K Q^T, P^T = exp(scale * S^T - lse), dP^T = V dO^T, dS^T = scale * P^T * (dP^T - Di)
//   dV += P^T dO, dK += dS^T Q, dQ += dS K.

static void attn_bwd_unit(const Attn& a, int64_t b, int64_t g, int64_t j0, int64_t nk, float* dq, float* scratch) {
  constexpr int64_t QB = kAttnQB, KT = kAttnKT;
  const int64_t D = a.D, Dv = a.Dv, Tq = a.Tq, Tk = a.Tk, off = Tk - Tq;
  const int64_t G = a.H / a.Hkv;
  float* qt = scratch;          // [D, QB]
  float* dot = qt + D * QB;     // [Dv, QB]
  float* st = dot + Dv * QB;    // [KT, QB]  S^T, then P^T
  float* dpt = st + KT * QB;    // [KT, QB]  dP^T, then dS^T
  float* dk = dpt + KT * QB;    // [KT, D]
  float* dv = dk + KT * D;      // [KT, Dv]
  for (int64_t t = 0; t < nk * D; t++) dk[t] = 0.f;
  for (int64_t t = 0; t < nk * Dv; t++) dv[t] = 0.f;
  const float* kt = a.k + ((b * a.Hkv + g) * Tk + j0) * D;
  const float* vt = a.v + ((b * a.Hkv + g) * Tk + j0) * Dv;
  const F scale = fset(a.scale);
  for (int64_t h = g * G; h < (g + 1) * G; h++) {
    const int64_t bh = b * a.H + h;
    const uint8_t* mbase = a.mask ? a.mask + b * a.msB + h * a.msH : nullptr;
    const int64_t istart = a.causal ? imax(0, j0 - off) : 0;
    for (int64_t i0 = istart; i0 < Tq; i0 += QB) {
      const int64_t nr = imin(QB, Tq - i0);
      const int64_t nvec = (nr + W - 1) / W;
      const float* qr = a.q + (bh * Tq + i0) * D;
      const float* gr = a.gout + (bh * Tq + i0) * Dv;
      for (int64_t d = 0; d < D; d++) {
        float* dst = qt + d * QB;
        for (int64_t r = 0; r < nr; r++) dst[r] = qr[r * D + d];
        for (int64_t r = nr; r < nvec * W; r++) dst[r] = 0.f;
      }
      for (int64_t d = 0; d < Dv; d++) {
        float* dst = dot + d * QB;
        for (int64_t r = 0; r < nr; r++) dst[r] = gr[r * Dv + d];
        for (int64_t r = nr; r < nvec * W; r++) dst[r] = 0.f;
      }
      gemm_bc(nk, nr, D, kt, D, 1, qt, QB, st, QB, false);
      gemm_bc(nk, nr, Dv, vt, Dv, 1, dot, QB, dpt, QB, false);
      const bool diag = a.causal && j0 + nk - 1 > i0 + off;
      for (int64_t c = 0; c < nvec; c++) {
        const int64_t lanes = imin(W, nr - c * W);
        const float* lp = a.lse + bh * Tq + i0 + c * W;
        const float* dp = a.di + bh * Tq + i0 + c * W;
        F L = lanes == W ? load(lp) : loadn(lp, lanes, kInf);
        L = select(cmpeq(L, fset(-kInf)), fset(kInf), L);  // rows that saw nothing: P = 0
        F Di = lanes == W ? load(dp) : loadn(dp, lanes, 0.f);
        F rowi = fset((float)(i0 + c * W)) + load(kIota);
        for (int64_t j = 0; j < nk; j++) {
          F p = vexp(vfnma(fset(1.f), L, load(st + j * QB + c * W) * scale));
          if (diag) p = select(cmpge(rowi, fset((float)(j0 + j - off))), p, fzero());
          store(st + j * QB + c * W, p);
          store(dpt + j * QB + c * W, p * (load(dpt + j * QB + c * W) - Di) * scale);
        }
      }
      if (mbase) {
        for (int64_t r = 0; r < nr; r++) {
          const uint8_t* mrow = mbase + (i0 + r) * a.msQ + j0;
          for (int64_t j = 0; j < nk; j++)
            if (!mrow[j]) { st[j * QB + r] = 0.f; dpt[j * QB + r] = 0.f; }
        }
      }
      gemm_bc(nk, Dv, nr, st, QB, 1, gr, Dv, dv, Dv, true);
      gemm_bc(nk, D, nr, dpt, QB, 1, qr, D, dk, D, true);
      gemm_bc(nr, D, nk, dpt, 1, QB, kt, D, dq + (bh * Tq + i0) * D, D, true);
    }
  }
  float* gk = a.gk + ((b * a.Hkv + g) * Tk + j0) * D;
  float* gv = a.gv + ((b * a.Hkv + g) * Tk + j0) * Dv;
  for (int64_t t = 0; t < nk * D; t++) gk[t] = dk[t];
  for (int64_t t = 0; t < nk * Dv; t++) gv[t] = dv[t];
}

static void attn_bwd(const Attn& a, float* dq, int64_t u0, int64_t u1, float* scratch) {
  const int64_t nkb = (a.Tk + kAttnKT - 1) / kAttnKT;
  for (int64_t u = u0; u < u1; u++) {
    const int64_t bg = u / nkb, j0 = (u % nkb) * kAttnKT;
    attn_bwd_unit(a, bg / a.Hkv, bg % a.Hkv, j0, imin(kAttnKT, a.Tk - j0), dq, scratch);
  }
}

// ================================================================ cross-entropy

static void ce_fwd(const float* logits, const int32_t* targets, float* loss, float* lse, int64_t rows, int64_t V, int32_t ignore, float smoothing) {
  for (int64_t r = 0; r < rows; r++) {
    const float* x = logits + r * V;
    const float m = minmax_span(true, x, V);
    F mv = fset(m), s0 = fzero(), s1 = fzero();
    int64_t i = 0;
    for (; i + W <= V; i += W) s0 = s0 + vexp(load(x + i) - mv);
    if (i < V) s1 = vexp(loadn(x + i, V - i, -kInf) - mv);
    const double l = (double)m + log((double)hsum(s0 + s1));
    lse[r] = (float)l;
    const int32_t t = targets[r];
    if (t == ignore) { loss[r] = 0.f; continue; }
    double v = (1.0 - smoothing) * (l - (double)x[t]);
    if (smoothing != 0.f) v += smoothing * (l - sum_span(x, V) / (double)V);
    loss[r] = (float)v;
  }
}

static void ce_bwd(const float* logits, const int32_t* targets, const float* lse, const float* gloss, float* glogits, int64_t rows, int64_t V, int32_t ignore, float smoothing) {
  for (int64_t r = 0; r < rows; r++) {
    const float* x = logits + r * V;
    float* g = glogits + r * V;
    const int32_t t = targets[r];
    if (t == ignore) {
      for (int64_t i = 0; i < V; i++) g[i] = 0.f;
      continue;
    }
    const float gl = gloss[r];
    F L = fset(lse[r]), G = fset(gl), U = fset(gl * smoothing / (float)V);
    int64_t i = 0;
    for (; i + W <= V; i += W) store(g + i, vfnma(fset(1.f), U, vexp(load(x + i) - L) * G));
    if (i < V) storen(g + i, vfnma(fset(1.f), U, vexp(loadn(x + i, V - i) - L) * G), V - i);
    g[t] -= gl * (1.f - smoothing);
  }
}

// ================================================================ optimisers

static void adamw(float* p, const float* g, float* m, float* v, int64_t n, const AdamW& h) {
  const F decay = fset(h.decay), b1 = fset(h.beta1), b2 = fset(h.beta2), c1 = fset(h.c1), c2 = fset(h.c2);
  const F step = fset(h.step), ibc2 = fset(h.ibc2), eps = fset(h.eps);
  for (int64_t i = 0; i < n; i += W) {
    const int64_t c = imin(W, n - i);
    const bool full = c == W;
    F pv = full ? load(p + i) : loadn(p + i, c);
    F gv = full ? load(g + i) : loadn(g + i, c);
    F mv = full ? load(m + i) : loadn(m + i, c);
    F vv = full ? load(v + i) : loadn(v + i, c);
    pv = pv * decay;
    mv = vfma(b1, mv, c1 * gv);
    vv = vfma(b2, vv, c2 * gv * gv);
    pv = pv - step * mv / (vsqrt(vv * ibc2) + eps);
    if (full) { store(p + i, pv); store(m + i, mv); store(v + i, vv); }
    else { storen(p + i, pv, c); storen(m + i, mv, c); storen(v + i, vv, c); }
  }
}

static void sgd(float* p, const float* g, float* buf, int64_t n, const Sgd& h) {
  const F lr = fset(h.lr), wd = fset(h.wd), mom = fset(h.momentum), damp = fset(1.f - h.dampening);
  const bool useBuf = h.momentum != 0.f;
  for (int64_t i = 0; i < n; i += W) {
    const int64_t c = imin(W, n - i);
    const bool full = c == W;
    F pv = full ? load(p + i) : loadn(p + i, c);
    F gv = full ? load(g + i) : loadn(g + i, c);
    gv = vfma(wd, pv, gv);
    F st = gv;
    if (useBuf) {
      F bv;
      if (h.first) bv = gv;
      else bv = vfma(mom, full ? load(buf + i) : loadn(buf + i, c), damp * gv);
      if (full) store(buf + i, bv); else storen(buf + i, bv, c);
      st = h.nesterov ? vfma(mom, bv, gv) : bv;
    }
    pv = vfnma(lr, st, pv);
    if (full) store(p + i, pv); else storen(p + i, pv, c);
  }
}

// ================================================================ table

static const KernelTable kTable = {
  kIsaName, unary, unary_bwd, binary, where, reduce_rows, reduce_cols, sum_squares, softmax, softmax_bwd,
  layernorm, layernorm_bwd, rmsnorm, rmsnorm_bwd, rope, attn_fwd, attn_bwd, rowdot, ce_fwd, ce_bwd,
  adamw, sgd, acc,
};
