// Vector API for kernels_isa.h, portable scalar flavour (1 float per "vector"). Same contract
// as kernels_vec_avx512.h; needs <cstring> and <cmath>.

constexpr int W = 1;

struct F { float v; };
struct M { bool m; };

static inline uint32_t fbits(float a) { uint32_t u; memcpy(&u, &a, 4); return u; }
static inline float bitsf(uint32_t u) { float a; memcpy(&a, &u, 4); return a; }

static inline F fset(float a) { return {a}; }
static inline F fzero() { return {0.f}; }
static inline F load(const float* p) { return {*p}; }
static inline void store(float* p, F a) { *p = a.v; }
static inline F loadn(const float* p, int64_t n, float fill = 0.f) { return {n > 0 ? *p : fill}; }
static inline void storen(float* p, F a, int64_t n) { if (n > 0) *p = a.v; }

static inline F operator+(F a, F b) { return {a.v + b.v}; }
static inline F operator-(F a, F b) { return {a.v - b.v}; }
static inline F operator*(F a, F b) { return {a.v * b.v}; }
static inline F operator/(F a, F b) { return {a.v / b.v}; }
static inline F vfma(F a, F b, F c) { return {a.v * b.v + c.v}; }
static inline F vfnma(F a, F b, F c) { return {c.v - a.v * b.v}; }
static inline F vmax(F a, F b) { return {a.v > b.v ? a.v : b.v}; }
static inline F vmin(F a, F b) { return {a.v < b.v ? a.v : b.v}; }
static inline F vsqrt(F a) { return {sqrtf(a.v)}; }
static inline F vabs(F a) { return {fabsf(a.v)}; }
static inline F vneg(F a) { return {-a.v}; }
static inline F vcopysign(F a, F s) { return {copysignf(a.v, s.v)}; }
// Round to nearest even without a libm call (baseline x86-64 has no roundss): adding 1.5 * 2^23
// leaves no fraction bits; larger values are already integral.
static inline F vround(F a) {
  const float m = 12582912.f;
  return {fabsf(a.v) < 4194304.f ? (a.v + m) - m : a.v};
}
static inline F vrecip(F d) { return {1.f / d.v}; }
static inline F vldexp(F y, F n) {
  int32_t ni = (int32_t)n.v;
  int32_t n1 = ni >> 1, n2 = ni - n1;
  return {y.v * bitsf((uint32_t)(n1 + 127) << 23) * bitsf((uint32_t)(n2 + 127) << 23)};
}
static inline F vfrexp(F x, F* e) {
  bool tiny = x.v < 1.17549435e-38f;
  uint32_t b = fbits(tiny ? x.v * 8388608.f : x.v);
  *e = {(float)((int32_t)(b >> 23) - 127 - (tiny ? 23 : 0))};
  return {bitsf((b & 0x007fffffu) | 0x3f800000u)};
}

static inline M cmplt(F a, F b) { return {a.v < b.v}; }
static inline M cmple(F a, F b) { return {a.v <= b.v}; }
static inline M cmpgt(F a, F b) { return {a.v > b.v}; }
static inline M cmpge(F a, F b) { return {a.v >= b.v}; }
static inline M cmpeq(F a, F b) { return {a.v == b.v}; }
static inline M cmpne(F a, F b) { return {!(a.v == b.v)}; }
static inline M visnan(F a) { return {a.v != a.v}; }
static inline M operator&(M a, M b) { return {a.m && b.m}; }
static inline M operator|(M a, M b) { return {a.m || b.m}; }
static inline M operator~(M a) { return {!a.m}; }
static inline bool any(M a) { return a.m; }
static inline F select(M m, F a, F b) { return {m.m ? a.v : b.v}; }
static inline F ones(M m) { return {m.m ? 1.f : 0.f}; }
static inline M u8mask(const uint8_t* p) { return {*p != 0}; }
static inline M u8maskn(const uint8_t* p, int64_t n) { return {n > 0 && *p != 0}; }

static inline float hsum(F a) { return a.v; }
static inline float hmax(F a) { return a.v; }
static inline float hmin(F a) { return a.v; }

struct D2 { double s; };
static inline D2 d2zero() { return {0.0}; }
static inline D2 d2sqacc(D2 acc, F x) { double d = x.v; return {acc.s + d * d}; }
static inline double d2sum(D2 a) { return a.s; }

static inline F transpose_sum(const F* v) { return v[0]; }

constexpr int kMR = 4, kNV = 4;
