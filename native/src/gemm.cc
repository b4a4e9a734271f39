// sgemm driver and N-API binding: argument validation, batching, threading, cache blocking.
// Packed path (BLIS-style blocking, row-major C): A (an M block, all of K, times alpha) is packed
// once into MR-row panels shared by the team; work units (N range x M range) are then taken from
// a ticket counter, each packing its KC x nblk blocks of B (L2-resident) and sweeping the A panels
// (L1-resident) across them with the ISA's micro-kernel. m == 1 / n == 1 use bandwidth-bound GEMV
// loops; many small problems in a batch run one per thread.
#include "gemm.h"

#include <atomic>
#include <cstdlib>
#include <vector>

#include "common.h"
#include "threadpool.h"

namespace chimera {
namespace {

const GemmKernels& kernels_for(Isa i) {
#if CHIMERA_X86
  if (i == Isa::Avx512) return kGemmAvx512;
  if (i == Isa::Avx2) return kGemmAvx2;
#endif
  (void)i;
  return kGemmScalar;
}

constexpr int64_t kMaxPackedA = 1 << 21;  // floats of packed A per M block (8 MiB)
constexpr double kSmallWork = 1 << 18;     // m*n*k up to which a problem runs on one thread
constexpr double kTinyWork = 32768;        // ... and below which a whole batch does

bool use_small(const GemmKernels& K, const GemmProblem& p) {
  return K.small != nullptr && p.m > 1 && p.n > 1 && p.k > 0 && (double)p.m * (double)p.n * (double)p.k <= kSmallWork;
}

// ---------------------------------------------------------------- scratch buffers

struct Buf {
  float* p = nullptr;
  size_t cap = 0;
  Buf() = default;
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  Buf(Buf&& o) noexcept : p(o.p), cap(o.cap) { o.p = nullptr; o.cap = 0; }
  ~Buf() { free(p); }
  float* get(size_t n) {
    if (n > cap) {
      free(p);
      p = nullptr;
      cap = 0;
      size_t bytes = ((n * sizeof(float)) + 63) / 64 * 64;
      p = (float*)aligned_alloc(64, bytes);
      if (!p) throw std::bad_alloc();
      cap = n;
    }
    return p;
  }
};

// Per team member scratch; the calling JS thread owns one set (slots indexed by tid).
struct Scratch {
  Buf ap[2], bp, x, y;
  std::atomic<int64_t> ticket{0};  // next work unit of the packed path (slot 0 of a team)
  Scratch() = default;
  Scratch(Scratch&& o) noexcept
      : ap{std::move(o.ap[0]), std::move(o.ap[1])}, bp(std::move(o.bp)), x(std::move(o.x)), y(std::move(o.y)) {}
};

struct Sizes {
  size_t ap, bp, x, y;
  bool two_ap;  // several M blocks: double-buffer packed A
};

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// How the packed path cuts one problem (identical on every thread of a team).
struct Plan {
  int64_t mc;    // rows per M block (multiple of MR); A is packed for all of K once per block
  int64_t nblk;  // columns per work unit (multiple of NR)
  int64_t nu;    // work units along N
  int64_t mu;    // work units along M (per M block)
};

Plan make_plan(const GemmKernels& K, const GemmProblem& p, int nt) {
  Plan pl;
  const int64_t MR = K.MR, NR = K.NR;
  int64_t rows_fit = kMaxPackedA / p.k / MR * MR;
  pl.mc = round_up(p.m, MR);
  if (pl.mc > rows_fit) pl.mc = rows_fit > MR ? rows_fit : MR;
  if (nt == 1) {
    pl.nblk = round_up(p.n < K.NC ? p.n : K.NC, NR);
    pl.nu = (p.n + pl.nblk - 1) / pl.nblk;
    pl.mu = 1;
    return pl;
  }
  // About 4 units per thread, handed out dynamically, so a descheduled thread delays little.
  const int64_t target = 4 * (int64_t)nt;
  pl.nblk = round_up((p.n + target - 1) / target, NR);
  if (pl.nblk > K.NC) pl.nblk = K.NC;
  pl.nu = (p.n + pl.nblk - 1) / pl.nblk;
  const int64_t mp = pl.mc / MR;
  pl.mu = pl.nu >= target ? 1 : (target + pl.nu - 1) / pl.nu;
  if (pl.mu > mp) pl.mu = mp;
  return pl;
}

Sizes scratch_sizes(const GemmKernels& K, const GemmProblem& p, int nt) {
  Sizes s{0, 0, 0, 0, false};
  if (p.k == 0 || p.m == 0 || p.n == 0) return s;
  if (p.m == 1 || p.n == 1) {
    s.x = (size_t)p.k + 16;
    s.y = (size_t)(p.m > p.n ? p.m : p.n) + 16;
    return s;
  }
  if (use_small(K, p)) {
    s.bp = (size_t)(p.k * (p.tb ? round_up(p.n, K.NR) : K.NR));
    return s;
  }
  // A team may also run with one thread (batch-parallel, or an inline fallback): size for both.
  Plan pl = make_plan(K, p, nt), p1 = make_plan(K, p, 1);
  int64_t kc = p.k < K.KC ? p.k : K.KC;
  s.ap = (size_t)(pl.mc * p.k);
  s.two_ap = nt > 1 && pl.mc < p.m;
  s.bp = (size_t)(kc * (pl.nblk > p1.nblk ? pl.nblk : p1.nblk));
  return s;
}

void reserve(Scratch& s, const Sizes& z) {
  if (z.ap) s.ap[0].get(z.ap);
  if (z.ap && z.two_ap) s.ap[1].get(z.ap);
  if (z.bp) s.bp.get(z.bp);
  if (z.x) s.x.get(z.x);
  if (z.y) s.y.get(z.y);
}

// ---------------------------------------------------------------- per-team execution

void part(int64_t n, int tid, int nt, int64_t* b, int64_t* e) {
  *b = n * tid / nt;
  *e = n * (tid + 1) / nt;
}

// C = beta * C (k == 0).
void scale_c(const GemmProblem& p, int tid, int nt) {
  int64_t r0, r1;
  part(p.m, tid, nt, &r0, &r1);
  for (int64_t i = r0; i < r1; i++) {
    float* c = p.c + i * p.ldc;
    if (p.beta == 0.0f) for (int64_t j = 0; j < p.n; j++) c[j] = 0.0f;
    else for (int64_t j = 0; j < p.n; j++) c[j] *= p.beta;
  }
}

// m == 1 or n == 1: one vector times a matrix. `slots` are the team's scratch (slot tid is ours).
void gemv(const GemmKernels& K, const GemmProblem& p, int tid, int nt, Scratch* slots) {
  Scratch& mine = slots[tid];
  const bool row = p.m == 1;  // C row [1, n] = x[k] @ op(B); else C column [m, 1] = op(A) @ x[k]
  const int64_t len = row ? p.n : p.m;
  // x: the vector operand, made contiguous.
  const float* x;
  int64_t xs = row ? (p.ta ? p.lda : 1) : (p.tb ? 1 : p.ldb);
  const float* xsrc = row ? p.a : p.b;
  if (xs == 1 || p.k == 1) {
    x = xsrc;
  } else {
    float* xb = mine.x.p;
    for (int64_t kk = 0; kk < p.k; kk++) xb[kk] = xsrc[kk * xs];
    x = xb;
  }
  // Matrix operand: axpy form when its rows run along k, dot form when its rows run along len.
  const float* mat = row ? p.b : p.a;
  const int64_t ldm = row ? p.ldb : p.lda;
  const bool axpy = row ? !p.tb : p.ta;
  const int64_t ys = row ? 1 : p.ldc;
  float* const c = p.c;

  if (axpy && nt > 1 && p.k >= 64 * nt) {
    // Split k: each thread streams a contiguous band of rows into its own partial sums, then
    // each thread reduces a slice of the columns.
    int64_t k0, k1;
    part(p.k, tid, nt, &k0, &k1);
    K.gemv_axpy(k1 - k0, x + k0, mat + k0 * ldm, ldm, 0, len, 1.0f, 0.0f, mine.y.p);
    if (nt > 1) barrier();
    int64_t j0, j1;
    part(len, tid, nt, &j0, &j1);
    for (int64_t j = j0; j < j1; j++) {
      float s = 0.0f;
      for (int t = 0; t < nt; t++) s += slots[t].y.p[j];
      float* cj = c + j * ys;
      *cj = p.beta != 0.0f ? p.alpha * s + p.beta * *cj : p.alpha * s;
    }
    return;
  }

  int64_t i0, i1;
  {
    int64_t blocks = (len + 15) / 16;
    int64_t bb, be;
    part(blocks, tid, nt, &bb, &be);
    i0 = bb * 16;
    i1 = be * 16 < len ? be * 16 : len;
  }
  if (i0 >= i1) return;
  float* y = c;
  if (ys != 1) {
    float* yb = mine.y.p;
    if (p.beta != 0.0f) for (int64_t i = i0; i < i1; i++) yb[i] = c[i * ys];
    y = yb;
  }
  if (axpy) K.gemv_axpy(p.k, x, mat, ldm, i0, i1, p.alpha, p.beta, y);
  else K.gemv_dot(p.k, x, mat, ldm, i0, i1, p.alpha, p.beta, y);
  if (ys != 1) for (int64_t i = i0; i < i1; i++) c[i * ys] = y[i];
}

// The packed path for one problem, run by every member of a team of nt threads. Per M block:
// the team packs A (all of K, times alpha) into slot 0, meets at a barrier, then takes work
// units (an N range x an M range) from a shared ticket counter. A unit walks K in KC slices:
// it packs its KC x nblk block of B (L2-resident) and sweeps the A panels (L1-resident) across
// it. Tickets drawn past the end of a block are kept for the next one, so one barrier per M
// block suffices (A is double-buffered when there are several blocks).
void packed(const GemmKernels& K, const GemmProblem& p, int tid, int nt, Scratch& shared, Scratch& mine) {
  const int MR = K.MR, NR = K.NR;
  const Plan pl = make_plan(K, p, nt);
  const int first_mode = p.beta == 0.0f ? kStore : p.beta == 1.0f ? kAccum : kScaleAdd;
  float* bp = mine.bp.p;
  if (nt == 1) shared.ticket.store(0, std::memory_order_relaxed);
  int64_t ticket = -1, base = 0;
  int parity = 0;
  for (int64_t ic = 0; ic < p.m; ic += pl.mc) {
    const int64_t mcb = p.m - ic < pl.mc ? p.m - ic : pl.mc;
    const int64_t mp = (mcb + MR - 1) / MR;
    const int64_t mc_pad = mp * MR;
    float* ap = shared.ap[parity].p;
    parity ^= (nt > 1 && pl.mc < p.m);
    // Packed A: K slice pc starts at ap + pc * mc_pad; panel pi of it at + pi * MR * kc.
    int64_t a0, a1;
    part(mp, tid, nt, &a0, &a1);
    for (int64_t pc = 0; pc < p.k; pc += K.KC) {
      const int64_t kc = p.k - pc < K.KC ? p.k - pc : K.KC;
      for (int64_t pi = a0; pi < a1; pi++) {
        int mr = (int)(mcb - pi * MR < MR ? mcb - pi * MR : MR);
        K.pack_a(p, ic + pi * MR, mr, pc, kc, ap + pc * mc_pad + pi * MR * kc);
      }
    }
    if (nt > 1) barrier();
    const int64_t mu = pl.mu < mp ? pl.mu : mp;
    const int64_t units = pl.nu * mu;
    if (ticket < 0) ticket = shared.ticket.fetch_add(1, std::memory_order_relaxed);
    while (ticket < base + units) {
      const int64_t u = ticket - base;
      const int64_t j0 = (u % pl.nu) * pl.nblk;
      const int64_t nc = p.n - j0 < pl.nblk ? p.n - j0 : pl.nblk;
      int64_t i0, i1;
      part(mp, (int)(u / pl.nu), (int)mu, &i0, &i1);
      for (int64_t pc = 0; pc < p.k; pc += K.KC) {
        const int64_t kc = p.k - pc < K.KC ? p.k - pc : K.KC;
        const int mode = pc == 0 ? first_mode : kAccum;
        K.pack_b(p, pc, kc, j0, nc, bp);
        const float* aslice = ap + pc * mc_pad;
        for (int64_t pi = i0; pi < i1; pi++) {
          const int mr = (int)(mcb - pi * MR < MR ? mcb - pi * MR : MR);
          const float* a = aslice + pi * MR * kc;
          float* crow = p.c + (ic + pi * MR) * p.ldc + j0;
          for (int64_t jp = 0; jp < nc; jp += NR) {
            const int nr = (int)(nc - jp < NR ? nc - jp : NR);
            K.micro(kc, a, bp + jp * kc, crow + jp, p.ldc, mr, nr, mode, &p.beta);
          }
        }
      }
      ticket = shared.ticket.fetch_add(1, std::memory_order_relaxed);
    }
    base += units;
  }
}

// Runs one problem on a team of nt threads; slots[0] is the team's shared scratch, slots[tid] ours.
void run_team(const GemmKernels& K, const GemmProblem& p, int tid, int nt, Scratch* slots) {
  if (p.m == 0 || p.n == 0) return;
  if (p.k == 0) scale_c(p, tid, nt);
  else if (p.m == 1 || p.n == 1) gemv(K, p, tid, nt, slots);
  else if (use_small(K, p)) { if (tid == 0) K.small(p, slots[0].bp.p); }
  else packed(K, p, tid, nt, slots[0], slots[tid]);
}

std::vector<Scratch>& scratch_slots(int n) {
  thread_local std::vector<Scratch> slots;
  if ((int)slots.size() < n) slots.resize(n);
  return slots;
}

struct Batched {
  GemmProblem p;  // batch 0
  int64_t sa, sb, sc, batch;
  GemmProblem at(int64_t i) const {
    GemmProblem q = p;
    q.a += i * sa;
    q.b += i * sb;
    q.c += i * sc;
    return q;
  }
};

void run_batched(const GemmKernels& K, const Batched& bt) {
  const GemmProblem& p = bt.p;
  if (bt.batch == 0 || p.m == 0 || p.n == 0) return;
  const int nthreads = get_threads();
  std::vector<Scratch>& slots = scratch_slots(nthreads);
  Sizes z = scratch_sizes(K, p, nthreads);
  for (int t = 0; t < nthreads; t++) reserve(slots[t], z);

  const double work = (double)p.m * (double)p.n * (double)p.k;
  const int64_t c_extent = (p.m - 1) * p.ldc + p.n;
  const bool disjoint_c = bt.sc >= c_extent;
  if (nthreads == 1 || work * bt.batch < kTinyWork) {
    for (int64_t i = 0; i < bt.batch; i++) run_team(K, bt.at(i), 0, 1, &slots[0]);
    return;
  }
  if (bt.batch >= nthreads && disjoint_c && work < 8 * kSmallWork) {
    // Many small problems: one thread per problem.
    parallel_run([&](int tid, int nt) {
      int64_t b0, b1;
      part(bt.batch, tid, nt, &b0, &b1);
      for (int64_t i = b0; i < b1; i++) run_team(K, bt.at(i), 0, 1, &slots[tid]);
    });
    return;
  }
  for (int64_t i = 0; i < bt.batch; i++) {
    GemmProblem q = bt.at(i);
    if (work < kTinyWork || use_small(K, q)) {
      run_team(K, q, 0, 1, &slots[0]);
      continue;
    }
    slots[0].ticket.store(0, std::memory_order_relaxed);
    parallel_run([&](int tid, int nt) { run_team(K, q, tid, nt, slots.data()); });
  }
}

// ---------------------------------------------------------------- binding

// Checks that a [rows, cols] matrix with row stride ld, batch stride st, starting at off, fits in len.
void check_operand(const Call& c, const char* name, int64_t len, int64_t off, int64_t rows, int64_t cols, int64_t ld,
                   int64_t st, int64_t batch) {
  if (rows == 0 || cols == 0 || batch == 0) return;
  if (ld < cols)
    c.fail("ld of %s = %lld is smaller than the %lld columns of stored %s [%lld, %lld]", name, (long long)ld,
           (long long)cols, name, (long long)rows, (long long)cols);
  int64_t last = c.mul(batch - 1, st);
  int64_t span = c.mul(rows - 1, ld);
  int64_t end;
  if (__builtin_add_overflow(off, last, &end) || __builtin_add_overflow(end, span, &end) ||
      __builtin_add_overflow(end, cols, &end))
    c.fail("%s: extent overflows", name);
  if (end > len)
    c.fail("%s [%lld x %lld, %lld] at offset %lld (ld %lld, batch stride %lld) needs %lld elements but has length %lld",
           name, (long long)batch, (long long)rows, (long long)cols, (long long)off, (long long)ld, (long long)st,
           (long long)end, (long long)len);
}

// gemm(transA, transB, m, n, k, alpha, beta, a, aOff, lda, strideA, b, bOff, ldb, strideB,
//      c, cOff, ldc, strideC, batch): GemmArgs of src/engine/backend.ts, positionally.
napi_value Gemm(Call& c) {
  bool ta = c.boolean(0, "transA"), tb = c.boolean(1, "transB");
  int64_t m = c.size(2, "m"), n = c.size(3, "n"), k = c.size(4, "k");
  double alpha = c.num(5, "alpha"), beta = c.num(6, "beta");
  F32 a = c.f32(7, "a");
  int64_t aOff = c.size(8, "aOff"), lda = c.size(9, "lda"), sa = c.size(10, "strideA");
  F32 b = c.f32(11, "b");
  int64_t bOff = c.size(12, "bOff"), ldb = c.size(13, "ldb"), sb = c.size(14, "strideB");
  F32 cc = c.f32(15, "c");
  int64_t cOff = c.size(16, "cOff"), ldc = c.size(17, "ldc"), sc = c.size(18, "strideC");
  int64_t batch = c.size(19, "batch");
  check_operand(c, "A", a.len, aOff, ta ? k : m, ta ? m : k, lda, sa, batch);
  check_operand(c, "B", b.len, bOff, tb ? n : k, tb ? k : n, ldb, sb, batch);
  check_operand(c, "C", cc.len, cOff, m, n, ldc, sc, batch);
  if (sc == 0 && batch > 1 && m > 0 && n > 0) c.fail("strideC = 0 with batch %lld would write every batch into the same C", (long long)batch);
  // An empty operand may carry any offset; never form a pointer past its array.
  auto at = [](F32 s, int64_t off) { return off <= s.len ? s.data + off : s.data; };
  GemmProblem p{ta, tb, m, n, k, (float)alpha, (float)beta, at(a, aOff), lda, at(b, bOff), ldb, at(cc, cOff), ldc};
  sgemm_batched(p, sa, sb, sc, batch);
  return c.undefined();
}

}  // namespace

void sgemm_batched(const GemmProblem& p, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch) {
  run_batched(kernels_for(isa()), Batched{p, strideA, strideB, strideC, batch});
}

void sgemm_batched_with(const GemmKernels& K, const GemmProblem& p, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch) {
  run_batched(K, Batched{p, strideA, strideB, strideC, batch});
}

}  // namespace chimera

void chimera_register_gemm(napi_env env, napi_value exports) { chimera::def(env, exports, "gemm", chimera::Gemm); }
