// Vector API for kernels_isa.h, AVX-512 flavour (16 floats). Included inside a namespace after
// `#pragma GCC target(...)`; <immintrin.h> must already be included.
// Semantics shared by all flavours: vmax(a, b) = a > b ? a : b and vmin(a, b) = a < b ? a : b
// (the second operand wins when either is NaN), select(m, a, b) = m ? a : b.

constexpr int W = 16;

struct F { __m512 v; };
struct M { __mmask16 k; };

static inline F fset(float a) { return {_mm512_set1_ps(a)}; }
static inline F fzero() { return {_mm512_setzero_ps()}; }
static inline F load(const float* p) { return {_mm512_loadu_ps(p)}; }
static inline void store(float* p, F a) { _mm512_storeu_ps(p, a.v); }
static inline __mmask16 tailk(int64_t n) { return (__mmask16)((1u << n) - 1u); }
// n in [0, W): loads n lanes, the rest are `fill`.
static inline F loadn(const float* p, int64_t n, float fill = 0.f) { return {_mm512_mask_loadu_ps(_mm512_set1_ps(fill), tailk(n), p)}; }
static inline void storen(float* p, F a, int64_t n) { _mm512_mask_storeu_ps(p, tailk(n), a.v); }

static inline F operator+(F a, F b) { return {_mm512_add_ps(a.v, b.v)}; }
static inline F operator-(F a, F b) { return {_mm512_sub_ps(a.v, b.v)}; }
static inline F operator*(F a, F b) { return {_mm512_mul_ps(a.v, b.v)}; }
static inline F operator/(F a, F b) { return {_mm512_div_ps(a.v, b.v)}; }
// a * b + c and c - a * b.
static inline F vfma(F a, F b, F c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
static inline F vfnma(F a, F b, F c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; }
static inline F vmax(F a, F b) { return {_mm512_max_ps(a.v, b.v)}; }
static inline F vmin(F a, F b) { return {_mm512_min_ps(a.v, b.v)}; }
static inline F vsqrt(F a) { return {_mm512_sqrt_ps(a.v)}; }
static inline F vabs(F a) { return {_mm512_abs_ps(a.v)}; }
static inline F vneg(F a) { return {_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32((int)0x80000000u)))}; }
// Sign bit of s applied to |a|.
static inline F vcopysign(F a, F s) {
  const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
  return {_mm512_castsi512_ps(_mm512_ternarylogic_epi32(sign, _mm512_castps_si512(s.v), _mm512_castps_si512(a.v), 0xCA))};
}
static inline F vround(F a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
// ~23-bit reciprocal (rcp14 + one Newton step); d must be finite and nonzero (and normal-ish).
static inline F vrecip(F d) {
  __m512 r = _mm512_rcp14_ps(d.v);
  return {_mm512_fmadd_ps(r, _mm512_fnmadd_ps(d.v, r, _mm512_set1_ps(1.f)), r)};
}
// y * 2^n for integral n (any range; overflow gives inf, underflow 0 / subnormal).
static inline F vldexp(F y, F n) { return {_mm512_scalef_ps(y.v, n.v)}; }
// x = m * 2^e with m in [1, 2), for finite positive x (subnormals included); returns m.
static inline F vfrexp(F x, F* e) {
  *e = {_mm512_getexp_ps(x.v)};
  return {_mm512_getmant_ps(x.v, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero)};
}

static inline M cmplt(F a, F b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
static inline M cmple(F a, F b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }
static inline M cmpgt(F a, F b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)}; }
static inline M cmpge(F a, F b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ)}; }
static inline M cmpeq(F a, F b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ)}; }
static inline M cmpne(F a, F b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_NEQ_UQ)}; }
static inline M visnan(F a) { return {_mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q)}; }
static inline M operator&(M a, M b) { return {(__mmask16)(a.k & b.k)}; }
static inline M operator|(M a, M b) { return {(__mmask16)(a.k | b.k)}; }
static inline M operator~(M a) { return {(__mmask16)~a.k}; }
static inline bool any(M a) { return a.k != 0; }
static inline F select(M m, F a, F b) { return {_mm512_mask_blend_ps(m.k, b.v, a.v)}; }
// 1.0 where m, else 0.0.
static inline F ones(M m) { return {_mm512_maskz_mov_ps(m.k, _mm512_set1_ps(1.f))}; }
// Lanes where the bytes p[0..W) are nonzero (n-lane variant leaves the rest false).
static inline M u8mask(const uint8_t* p) {
  return {_mm_test_epi8_mask(_mm_loadu_si128((const __m128i*)p), _mm_set1_epi8((char)0xff))};
}
static inline M u8maskn(const uint8_t* p, int64_t n) {
  __m128i b = _mm_maskz_loadu_epi8(tailk(n), p);
  return {_mm_test_epi8_mask(b, _mm_set1_epi8((char)0xff))};
}

static inline float hsum(F a) { return _mm512_reduce_add_ps(a.v); }
static inline float hmax(F a) { return _mm512_reduce_max_ps(a.v); }
static inline float hmin(F a) { return _mm512_reduce_min_ps(a.v); }

// f64 accumulation of squares: acc (two halves) += x^2.
struct D2 { __m512d lo, hi; };
static inline D2 d2zero() { return {_mm512_setzero_pd(), _mm512_setzero_pd()}; }
static inline D2 d2sqacc(D2 acc, F x) {
  __m512d l = _mm512_cvtps_pd(_mm512_castps512_ps256(x.v));
  __m512d h = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x.v), 1)));
  return {_mm512_fmadd_pd(l, l, acc.lo), _mm512_fmadd_pd(h, h, acc.hi)};
}
static inline double d2sum(D2 a) { return _mm512_reduce_add_pd(_mm512_add_pd(a.lo, a.hi)); }

// Lane j of the result = hsum(v[j]) for W vectors.
static inline F transpose_sum(const F* v) {
  __m512 w[8], z[4], u[2];
  for (int k = 0; k < 8; k++)
    w[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k].v, v[2 * k + 1].v, 0x44), _mm512_shuffle_f32x4(v[2 * k].v, v[2 * k + 1].v, 0xEE));
  for (int k = 0; k < 4; k++)
    z[k] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * k], w[2 * k + 1], 0x88), _mm512_shuffle_f32x4(w[2 * k], w[2 * k + 1], 0xDD));
  for (int k = 0; k < 2; k++)
    u[k] = _mm512_add_ps(_mm512_shuffle_ps(z[2 * k], z[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(z[2 * k], z[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  __m512 r = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  // Lane 4b + t now holds the sum of v[4t + b].
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return {_mm512_permutexvar_ps(idx, r)};
}

// Register blocking of the broadcast micro-kernel: kMR rows x kNV vectors.
constexpr int kMR = 4, kNV = 4;
