// Plain C++ kernels (no hand-written SIMD): strided copies, convolution helpers, pooling,
// resizing, indexing, argmax, cumsum, topk. Arguments are validated by the bindings.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace chimera {
namespace kern {

namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

template <typename T>
void copy_run(const T* src, int64_t st, T* dst, int64_t n) {
  if (st == 1) memcpy(dst, src, (size_t)n * sizeof(T));
  else if (st == 0) std::fill(dst, dst + n, *src);
  else for (int64_t i = 0; i < n; i++) dst[i] = src[i * st];
}

// 2-D transpose-like copy: dst [R, C] row-major from src with strides (sr, sc), in tiles so
// that both sides stay in cache.
template <typename T>
void copy_2d_tiled(const T* src, int64_t sr, int64_t sc, T* dst, int64_t R, int64_t C) {
  constexpr int64_t B = 16;
  for (int64_t r0 = 0; r0 < R; r0 += B)
    for (int64_t c0 = 0; c0 < C; c0 += B) {
      const int64_t r1 = imin(R, r0 + B), c1 = imin(C, c0 + B);
      for (int64_t r = r0; r < r1; r++) {
        const T* s = src + r * sr;
        T* d = dst + r * C;
        for (int64_t c = c0; c < c1; c++) d[c] = s[c * sc];
      }
    }
}

template <typename T>
void copy_nd(const Nd& nd, T* dst, int64_t e0, int64_t e1) {
  const T* src = (const T*)nd.base[0];
  const int R = nd.rank;
  const int64_t inner = nd.shape[R - 1], si = nd.st[0][R - 1];
  if (inner <= 0 || e0 >= e1) return;
  // Whole 2-D transposes (the inner stride is not 1 but the outer one is) go through tiles.
  if (R == 2 && si != 1 && e0 == 0 && e1 == nd.shape[0] * inner && nd.st[0][0] == 1) {
    copy_2d_tiled(src, nd.st[0][0], si, dst, nd.shape[0], inner);
    return;
  }
  int64_t idx[kMaxRank];
  int64_t off = 0, row = e0 / inner, col = e0 % inner;
  for (int d = R - 2; d >= 0; d--) {
    idx[d] = row % nd.shape[d];
    row /= nd.shape[d];
    off += idx[d] * nd.st[0][d];
  }
  int64_t e = e0;
  for (;;) {
    const int64_t len = imin(inner - col, e1 - e);
    copy_run(src + off + col * si, si, dst + e, len);
    e += len;
    if (e >= e1) break;
    col = 0;
    for (int d = R - 2; d >= 0; d--) {
      off += nd.st[0][d];
      if (++idx[d] < nd.shape[d]) break;
      off -= nd.st[0][d] * nd.shape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace

void copy_strided(const Nd& nd, int esize, void* dst, int64_t e0, int64_t e1) {
  switch (esize) {
    case 8: return copy_nd<uint64_t>(nd, (uint64_t*)dst, e0, e1);
    case 4: return copy_nd<uint32_t>(nd, (uint32_t*)dst, e0, e1);
    case 2: return copy_nd<uint16_t>(nd, (uint16_t*)dst, e0, e1);
    default: return copy_nd<uint8_t>(nd, (uint8_t*)dst, e0, e1);
  }
}

// ---------------------------------------------------------------- im2col / col2im

namespace {
// Output columns ow in [lo, hi) read input column ow*sw + base (base = kj*dw - pw) inside [0, W).
inline void valid_range(int64_t Wo, int64_t sw, int64_t base, int64_t W, int64_t* lo, int64_t* hi) {
  // ow*sw + base >= 0  <=>  ow >= ceil(-base / sw)
  int64_t l = base >= 0 ? 0 : (-base + sw - 1) / sw;
  // ow*sw + base < W  <=>  ow < ceil((W - base) / sw)
  int64_t h = W - base <= 0 ? 0 : (W - base + sw - 1) / sw;
  *lo = imin(l, Wo);
  *hi = imax(*lo, imin(h, Wo));
}
}  // namespace

void im2col(const float* x, const Conv& g, float* cols, int64_t c0, int64_t c1) {
  const int64_t L = g.Ho * g.Wo;
  for (int64_t c = c0; c < c1; c++)
    for (int64_t ki = 0; ki < g.kh; ki++)
      for (int64_t kj = 0; kj < g.kw; kj++) {
        float* dst = cols + ((c * g.kh + ki) * g.kw + kj) * L;
        const int64_t base = kj * g.dw - g.pw;
        int64_t lo, hi;
        valid_range(g.Wo, g.sw, base, g.W, &lo, &hi);
        for (int64_t oh = 0; oh < g.Ho; oh++) {
          float* d = dst + oh * g.Wo;
          const int64_t ih = oh * g.sh - g.ph + ki * g.dh;
          if (ih < 0 || ih >= g.H) { std::fill(d, d + g.Wo, 0.f); continue; }
          const float* s = x + (c * g.H + ih) * g.W + base;
          std::fill(d, d + lo, 0.f);
          if (g.sw == 1) memcpy(d + lo, s + lo, (size_t)(hi - lo) * sizeof(float));
          else for (int64_t ow = lo; ow < hi; ow++) d[ow] = s[ow * g.sw];
          std::fill(d + hi, d + g.Wo, 0.f);
        }
      }
}

void col2im(const float* cols, const Conv& g, float* gx, int64_t c0, int64_t c1) {
  const int64_t L = g.Ho * g.Wo;
  for (int64_t c = c0; c < c1; c++)
    for (int64_t ki = 0; ki < g.kh; ki++)
      for (int64_t kj = 0; kj < g.kw; kj++) {
        const float* src = cols + ((c * g.kh + ki) * g.kw + kj) * L;
        const int64_t base = kj * g.dw - g.pw;
        int64_t lo, hi;
        valid_range(g.Wo, g.sw, base, g.W, &lo, &hi);
        for (int64_t oh = 0; oh < g.Ho; oh++) {
          const int64_t ih = oh * g.sh - g.ph + ki * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          const float* s = src + oh * g.Wo;
          float* d = gx + (c * g.H + ih) * g.W + base;
          for (int64_t ow = lo; ow < hi; ow++) d[ow * g.sw] += s[ow];
        }
      }
}

// ---------------------------------------------------------------- depthwise conv

void dwconv(const float* x, const float* w, const float* bias, float* y, const Conv& g, int64_t p0, int64_t p1) {
  const int64_t C = g.C;
  for (int64_t p = p0; p < p1; p++) {
    const int64_t c = p % C;
    const float* xp = x + p * g.H * g.W;
    float* yp = y + p * g.Ho * g.Wo;
    std::fill(yp, yp + g.Ho * g.Wo, bias ? bias[c] : 0.f);
    for (int64_t ki = 0; ki < g.kh; ki++)
      for (int64_t kj = 0; kj < g.kw; kj++) {
        const float wv = w[(c * g.kh + ki) * g.kw + kj];
        const int64_t base = kj * g.dw - g.pw;
        int64_t lo, hi;
        valid_range(g.Wo, g.sw, base, g.W, &lo, &hi);
        for (int64_t oh = 0; oh < g.Ho; oh++) {
          const int64_t ih = oh * g.sh - g.ph + ki * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          const float* s = xp + ih * g.W + base;
          float* d = yp + oh * g.Wo;
          if (g.sw == 1) for (int64_t ow = lo; ow < hi; ow++) d[ow] += wv * s[ow];
          else for (int64_t ow = lo; ow < hi; ow++) d[ow] += wv * s[ow * g.sw];
        }
      }
  }
}

void dwconv_bwd_x(const float* w, const float* gy, float* gx, const Conv& g, int64_t p0, int64_t p1) {
  const int64_t C = g.C;
  for (int64_t p = p0; p < p1; p++) {
    const int64_t c = p % C;
    const float* gp = gy + p * g.Ho * g.Wo;
    float* xp = gx + p * g.H * g.W;
    std::fill(xp, xp + g.H * g.W, 0.f);
    for (int64_t ki = 0; ki < g.kh; ki++)
      for (int64_t kj = 0; kj < g.kw; kj++) {
        const float wv = w[(c * g.kh + ki) * g.kw + kj];
        const int64_t base = kj * g.dw - g.pw;
        int64_t lo, hi;
        valid_range(g.Wo, g.sw, base, g.W, &lo, &hi);
        for (int64_t oh = 0; oh < g.Ho; oh++) {
          const int64_t ih = oh * g.sh - g.ph + ki * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          const float* s = gp + oh * g.Wo;
          float* d = xp + ih * g.W + base;
          for (int64_t ow = lo; ow < hi; ow++) d[ow * g.sw] += wv * s[ow];
        }
      }
  }
}

void dwconv_bwd_w(const float* x, const float* gy, float* gw, const Conv& g, int64_t N, int64_t c0, int64_t c1) {
  const int64_t C = g.C;
  for (int64_t c = c0; c < c1; c++)
    for (int64_t ki = 0; ki < g.kh; ki++)
      for (int64_t kj = 0; kj < g.kw; kj++) {
        const int64_t base = kj * g.dw - g.pw;
        int64_t lo, hi;
        valid_range(g.Wo, g.sw, base, g.W, &lo, &hi);
        double acc = 0;
        for (int64_t n = 0; n < N; n++) {
          const float* xp = x + (n * C + c) * g.H * g.W;
          const float* gp = gy + (n * C + c) * g.Ho * g.Wo;
          for (int64_t oh = 0; oh < g.Ho; oh++) {
            const int64_t ih = oh * g.sh - g.ph + ki * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            const float* s = xp + ih * g.W + base;
            const float* d = gp + oh * g.Wo;
            float part = 0.f;
            for (int64_t ow = lo; ow < hi; ow++) part += d[ow] * s[ow * g.sw];
            acc += part;
          }
        }
        gw[(c * g.kh + ki) * g.kw + kj] += (float)acc;
      }
}

// ---------------------------------------------------------------- pooling (PyTorch floor mode)

namespace {
struct Window { int64_t h0, h1, w0, w1, count; };
inline Window window(const Pool& g, int64_t oh, int64_t ow) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = imin(h0 + g.kh, g.H + g.ph), w1 = imin(w0 + g.kw, g.W + g.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = imax(h0, 0); w0 = imax(w0, 0);
  h1 = imin(h1, g.H); w1 = imin(w1, g.W);
  return {h0, h1, w0, w1, g.includePad ? padded : (h1 - h0) * (w1 - w0)};
}
}  // namespace

void pool2d(bool max, const float* x, float* y, int32_t* argmax, const Pool& g, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; p++) {
    const float* xp = x + p * g.H * g.W;
    float* yp = y + p * g.Ho * g.Wo;
    int32_t* ap = argmax ? argmax + p * g.Ho * g.Wo : nullptr;
    for (int64_t oh = 0; oh < g.Ho; oh++)
      for (int64_t ow = 0; ow < g.Wo; ow++) {
        const Window win = window(g, oh, ow);
        if (max) {
          float best = -INFINITY;
          int64_t bi = win.h0 < win.h1 && win.w0 < win.w1 ? win.h0 * g.W + win.w0 : 0;
          for (int64_t h = win.h0; h < win.h1; h++)
            for (int64_t w = win.w0; w < win.w1; w++) {
              const float v = xp[h * g.W + w];
              if (v > best || std::isnan(v)) {  // a NaN wins (the last one), as the reference
                best = v;
                bi = h * g.W + w;
              }
            }
          yp[oh * g.Wo + ow] = best;
          if (ap) ap[oh * g.Wo + ow] = (int32_t)bi;
        } else {
          double s = 0;
          for (int64_t h = win.h0; h < win.h1; h++)
            for (int64_t w = win.w0; w < win.w1; w++) s += xp[h * g.W + w];
          yp[oh * g.Wo + ow] = win.count > 0 ? (float)(s / (double)win.count) : 0.f;
        }
      }
  }
}

void pool2d_bwd(bool max, const float* gy, const int32_t* argmax, float* gx, const Pool& g, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; p++) {
    const float* gp = gy + p * g.Ho * g.Wo;
    float* xp = gx + p * g.H * g.W;
    if (max) {
      const int32_t* ap = argmax + p * g.Ho * g.Wo;
      for (int64_t o = 0; o < g.Ho * g.Wo; o++) xp[ap[o]] += gp[o];
      continue;
    }
    for (int64_t oh = 0; oh < g.Ho; oh++)
      for (int64_t ow = 0; ow < g.Wo; ow++) {
        const Window win = window(g, oh, ow);
        if (win.count <= 0) continue;
        const float v = gp[oh * g.Wo + ow] / (float)win.count;
        for (int64_t h = win.h0; h < win.h1; h++)
          for (int64_t w = win.w0; w < win.w1; w++) xp[h * g.W + w] += v;
      }
  }
}

// ---------------------------------------------------------------- interpolation (PyTorch semantics)

namespace {

// Source/destination ratio used by linear and cubic modes.
inline double area_scale(int64_t in, int64_t out, bool align, double given) {
  if (align) return out > 1 ? (double)(in - 1) / (double)(out - 1) : 0.0;
  return given > 0 ? given : (double)in / (double)out;
}

inline double source_index(double scale, int64_t dst, bool align, bool cubic) {
  if (align) return scale * (double)dst;
  const double s = scale * ((double)dst + 0.5) - 0.5;
  return (!cubic && s < 0) ? 0.0 : s;
}

// PyTorch computes floor(dst * scale) in f32.
inline int64_t nearest_index(int64_t dst, int64_t in, int64_t out, double given) {
  const float scale = (float)(given > 0 ? given : (double)in / (double)out);
  return imin((int64_t)std::floor((float)dst * scale), in - 1);
}

// Taps of one output coordinate: up to 4 (index, weight) pairs.
struct Taps { int64_t idx[4]; double w[4]; int n; };

inline double cubic1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
inline double cubic2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

inline Taps taps(int mode, int64_t dst, int64_t in, int64_t out, bool align, double given) {
  Taps t{};
  if (mode == 0) {
    t.n = 1;
    t.idx[0] = nearest_index(dst, in, out, given);
    t.w[0] = 1;
    return t;
  }
  const double scale = area_scale(in, out, align, given);
  const double src = source_index(scale, dst, align, mode == 2);
  if (mode == 1) {
    const int64_t i0 = imin((int64_t)src, in - 1);  // src >= 0 here
    const int64_t i1 = imin(i0 + 1, in - 1);
    const double l1 = std::min(std::max(src - (double)i0, 0.0), 1.0);
    t.n = 2;
    t.idx[0] = i0; t.w[0] = 1 - l1;
    t.idx[1] = i1; t.w[1] = l1;
    return t;
  }
  const double f = std::floor(src);
  const int64_t i = (int64_t)f;
  const double x = src - f, A = -0.75;
  t.n = 4;
  t.w[0] = cubic2(x + 1, A);
  t.w[1] = cubic1(x, A);
  t.w[2] = cubic1(1 - x, A);
  t.w[3] = cubic2(2 - x, A);
  for (int k = 0; k < 4; k++) t.idx[k] = imin(imax(i - 1 + k, 0), in - 1);
  return t;
}

// Source taps of every output row (th) and column (tw); shared by the forward and its adjoint.
void tap_tables(const Interp& g, std::vector<Taps>& th, std::vector<Taps>& tw) {
  th.resize(g.Ho);
  tw.resize(g.Wo);
  for (int64_t o = 0; o < g.Ho; o++) th[o] = taps(g.mode, o, g.H, g.Ho, g.alignCorners, g.scaleH);
  for (int64_t o = 0; o < g.Wo; o++) tw[o] = taps(g.mode, o, g.W, g.Wo, g.alignCorners, g.scaleW);
}

}  // namespace

void interpolate(const float* x, float* y, const Interp& g, int64_t p0, int64_t p1) {
  std::vector<Taps> th, tw;
  tap_tables(g, th, tw);
  for (int64_t p = p0; p < p1; p++) {
    const float* xp = x + p * g.H * g.W;
    float* yp = y + p * g.Ho * g.Wo;
    for (int64_t oh = 0; oh < g.Ho; oh++) {
      const Taps& a = th[oh];
      for (int64_t ow = 0; ow < g.Wo; ow++) {
        const Taps& b = tw[ow];
        double s = 0;
        for (int i = 0; i < a.n; i++) {
          const float* row = xp + a.idx[i] * g.W;
          double r = 0;
          for (int j = 0; j < b.n; j++) r += b.w[j] * row[b.idx[j]];
          s += a.w[i] * r;
        }
        yp[oh * g.Wo + ow] = (float)s;
      }
    }
  }
}

void interpolate_bwd(const float* gy, float* gx, const Interp& g, int64_t p0, int64_t p1) {
  std::vector<Taps> th, tw;
  tap_tables(g, th, tw);
  for (int64_t p = p0; p < p1; p++) {
    const float* gp = gy + p * g.Ho * g.Wo;
    float* xp = gx + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.Ho; oh++) {
      const Taps& a = th[oh];
      for (int64_t ow = 0; ow < g.Wo; ow++) {
        const Taps& b = tw[ow];
        const double v = gp[oh * g.Wo + ow];
        for (int i = 0; i < a.n; i++) {
          float* row = xp + a.idx[i] * g.W;
          for (int j = 0; j < b.n; j++) row[b.idx[j]] += (float)(v * a.w[i] * b.w[j]);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- argmax / cumsum / topk

void argreduce(bool argmax, const float* x, int32_t* out, int64_t outer, int64_t n, int64_t inner, int64_t o0, int64_t o1) {
  (void)outer;
  for (int64_t u = o0; u < o1; u++) {  // u = o * inner + c
    const int64_t o = u / inner, c = u % inner;
    const float* p = x + o * n * inner + c;
    int64_t best = 0;
    float bv = p[0];
    if (!std::isnan(bv))
      for (int64_t k = 1; k < n; k++) {
        const float v = p[k * inner];
        if (std::isnan(v)) { best = k; break; }  // NaN counts as the extreme, as in PyTorch
        if (argmax ? v > bv : v < bv) { bv = v; best = k; }
      }
    out[u] = (int32_t)best;
  }
}

void cumsum(const float* x, float* y, int64_t n, int64_t inner, bool reverse, int64_t o0, int64_t o1) {
  constexpr int64_t CB = 64;
  double acc[CB];
  for (int64_t o = o0; o < o1; o++)
    for (int64_t c0 = 0; c0 < inner; c0 += CB) {
      const int64_t cw = imin(CB, inner - c0);
      for (int64_t c = 0; c < cw; c++) acc[c] = 0;
      for (int64_t t = 0; t < n; t++) {
        const int64_t k = reverse ? n - 1 - t : t;
        const float* xs = x + (o * n + k) * inner + c0;
        float* ys = y + (o * n + k) * inner + c0;
        for (int64_t c = 0; c < cw; c++) {
          acc[c] += xs[c];
          ys[c] = (float)acc[c];
        }
      }
    }
}

void topk(const float* x, int64_t n, int64_t k, float* values, int32_t* indices, int64_t r0, int64_t r1, int32_t* scratch) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * n;
    for (int64_t i = 0; i < n; i++) scratch[i] = (int32_t)i;
    // Total order: NaN first (largest, as in PyTorch), then descending value, ties by index.
    auto before = [xr](int32_t a, int32_t b) {
      const float va = xr[a], vb = xr[b];
      const bool na = va != va, nb = vb != vb;
      if (na || nb) return na && nb ? a < b : na;
      if (va != vb) return va > vb;
      return a < b;
    };
    std::partial_sort(scratch, scratch + k, scratch + n, before);
    for (int64_t i = 0; i < k; i++) {
      values[r * k + i] = xr[scratch[i]];
      indices[r * k + i] = scratch[i];
    }
  }
}

// ---------------------------------------------------------------- indexing

void index_select(const float* x, const int32_t* idx, float* y, int64_t m, int64_t n, int64_t inner, int64_t u0, int64_t u1) {
  for (int64_t u = u0; u < u1; u++) {
    const int64_t o = u / m, i = u % m;
    memcpy(y + u * inner, x + (o * n + idx[i]) * inner, (size_t)inner * sizeof(float));
  }
}

void index_add(const float* gy, const int32_t* idx, float* gx, int64_t m, int64_t n, int64_t inner, int64_t o0, int64_t o1, int64_t c0, int64_t c1) {
  for (int64_t o = o0; o < o1; o++)
    for (int64_t i = 0; i < m; i++) {
      const float* s = gy + (o * m + i) * inner;
      float* d = gx + (o * n + idx[i]) * inner;
      for (int64_t c = c0; c < c1; c++) d[c] += s[c];
    }
}

void gather(const float* x, const int32_t* idx, float* y, int64_t n, int64_t m, int64_t inner, int64_t u0, int64_t u1) {
  for (int64_t u = u0; u < u1; u++) {  // u = o * m + i
    const int64_t o = u / m;
    const int32_t* ir = idx + u * inner;
    float* yr = y + u * inner;
    const float* xo = x + o * n * inner;
    for (int64_t c = 0; c < inner; c++) yr[c] = xo[(int64_t)ir[c] * inner + c];
  }
}

void scatter_add(const float* gy, const int32_t* idx, float* gx, int64_t n, int64_t m, int64_t inner, int64_t o0, int64_t o1, int64_t c0, int64_t c1) {
  for (int64_t o = o0; o < o1; o++) {
    float* xo = gx + o * n * inner;
    for (int64_t i = 0; i < m; i++) {
      const int32_t* ir = idx + (o * m + i) * inner;
      const float* gr = gy + (o * m + i) * inner;
      for (int64_t c = c0; c < c1; c++) xo[(int64_t)ir[c] * inner + c] += gr[c];
    }
  }
}

}  // namespace kern
}  // namespace chimera
