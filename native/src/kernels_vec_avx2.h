// Vector API for kernels_isa.h, AVX2 + FMA flavour (8 floats). Same contract as
// kernels_vec_avx512.h; included inside a namespace after `#pragma GCC target(...)`.

constexpr int W = 8;

struct F { __m256 v; };
struct M { __m256 m; };  // all-ones / all-zeros lanes

static inline F fset(float a) { return {_mm256_set1_ps(a)}; }
static inline F fzero() { return {_mm256_setzero_ps()}; }
static inline F load(const float* p) { return {_mm256_loadu_ps(p)}; }
static inline void store(float* p, F a) { _mm256_storeu_ps(p, a.v); }
static inline __m256i tailk(int64_t n) {
  alignas(32) static const int32_t tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i*)(tbl + 8 - n));
}
static inline F loadn(const float* p, int64_t n, float fill = 0.f) {
  __m256i k = tailk(n);
  __m256 v = _mm256_maskload_ps(p, k);
  return {_mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(k))};
}
static inline void storen(float* p, F a, int64_t n) { _mm256_maskstore_ps(p, tailk(n), a.v); }

static inline F operator+(F a, F b) { return {_mm256_add_ps(a.v, b.v)}; }
static inline F operator-(F a, F b) { return {_mm256_sub_ps(a.v, b.v)}; }
static inline F operator*(F a, F b) { return {_mm256_mul_ps(a.v, b.v)}; }
static inline F operator/(F a, F b) { return {_mm256_div_ps(a.v, b.v)}; }
static inline F vfma(F a, F b, F c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
static inline F vfnma(F a, F b, F c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }
static inline F vmax(F a, F b) { return {_mm256_max_ps(a.v, b.v)}; }
static inline F vmin(F a, F b) { return {_mm256_min_ps(a.v, b.v)}; }
static inline F vsqrt(F a) { return {_mm256_sqrt_ps(a.v)}; }
static inline F vabs(F a) { return {_mm256_and_ps(a.v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))}; }
static inline F vneg(F a) { return {_mm256_xor_ps(a.v, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)))}; }
static inline F vcopysign(F a, F s) {
  __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
  return {_mm256_or_ps(_mm256_and_ps(sign, s.v), _mm256_andnot_ps(sign, a.v))};
}
static inline F vround(F a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline F vrecip(F d) { return {_mm256_div_ps(_mm256_set1_ps(1.f), d.v)}; }
// y * 2^n for integral n in [-150, 128] (two exponent steps keep each factor normal).
static inline F vldexp(F y, F n) {
  __m256i ni = _mm256_cvtps_epi32(n.v);
  __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  __m256i bias = _mm256_set1_epi32(127);
  __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return {_mm256_mul_ps(_mm256_mul_ps(y.v, p1), p2)};
}
static inline F vfrexp(F x, F* e) {
  __m256 tiny = _mm256_cmp_ps(x.v, _mm256_set1_ps(1.17549435e-38f), _CMP_LT_OQ);
  __m256 xs = _mm256_blendv_ps(x.v, _mm256_mul_ps(x.v, _mm256_set1_ps(8388608.f)), tiny);
  __m256i bits = _mm256_castps_si256(xs);
  __m256 ex = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127)));
  *e = {_mm256_sub_ps(ex, _mm256_and_ps(tiny, _mm256_set1_ps(23.f)))};
  __m256i m = _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f800000));
  return {_mm256_castsi256_ps(m)};
}

static inline M cmplt(F a, F b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
static inline M cmple(F a, F b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ)}; }
static inline M cmpgt(F a, F b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
static inline M cmpge(F a, F b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ)}; }
static inline M cmpeq(F a, F b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ)}; }
static inline M cmpne(F a, F b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_NEQ_UQ)}; }
static inline M visnan(F a) { return {_mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q)}; }
static inline M operator&(M a, M b) { return {_mm256_and_ps(a.m, b.m)}; }
static inline M operator|(M a, M b) { return {_mm256_or_ps(a.m, b.m)}; }
static inline M operator~(M a) { return {_mm256_xor_ps(a.m, _mm256_castsi256_ps(_mm256_set1_epi32(-1)))}; }
static inline bool any(M a) { return _mm256_movemask_ps(a.m) != 0; }
static inline F select(M m, F a, F b) { return {_mm256_blendv_ps(b.v, a.v, m.m)}; }
static inline F ones(M m) { return {_mm256_and_ps(m.m, _mm256_set1_ps(1.f))}; }
static inline M u8mask(const uint8_t* p) {
  __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p));
  return {_mm256_castsi256_ps(_mm256_cmpgt_epi32(b, _mm256_setzero_si256()))};
}
static inline M u8maskn(const uint8_t* p, int64_t n) {
  alignas(16) uint8_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; i++) tmp[i] = p[i];
  return u8mask(tmp);
}

static inline float hsum(F a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float hmax(F a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float hmin(F a) {
  __m128 s = _mm_min_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_min_ps(s, _mm_movehl_ps(s, s));
  s = _mm_min_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct D2 { __m256d lo, hi; };
static inline D2 d2zero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
static inline D2 d2sqacc(D2 acc, F x) {
  __m256d l = _mm256_cvtps_pd(_mm256_castps256_ps128(x.v));
  __m256d h = _mm256_cvtps_pd(_mm256_extractf128_ps(x.v, 1));
  return {_mm256_fmadd_pd(l, l, acc.lo), _mm256_fmadd_pd(h, h, acc.hi)};
}
static inline double d2sum(D2 a) {
  __m256d s = _mm256_add_pd(a.lo, a.hi);
  __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

// Lane j of the result = hsum(v[j]) for W vectors.
static inline F transpose_sum(const F* v) {
  __m256 h0123 = _mm256_hadd_ps(_mm256_hadd_ps(v[0].v, v[1].v), _mm256_hadd_ps(v[2].v, v[3].v));
  __m256 h4567 = _mm256_hadd_ps(_mm256_hadd_ps(v[4].v, v[5].v), _mm256_hadd_ps(v[6].v, v[7].v));
  return {_mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31))};
}

constexpr int kMR = 4, kNV = 2;
