// Module entry of chimera_native: registers the GEMM and kernel bindings plus thread/ISA controls.
#include "common.h"
#include "threadpool.h"

using namespace chimera;

namespace {

// setThreads(n: integer >= 1): threads used by parallel kernels (including the caller).
napi_value SetThreads(Call& c) {
  int64_t n = c.integer(0, "n");
  if (n < 1 || n > 256) c.fail("n must be in [1, 256] (got %lld)", (long long)n);
  set_threads((int)n);
  return c.undefined();
}

napi_value GetThreads(Call& c) { return c.number_value(get_threads()); }

// isa(): the code path kernels take now: "avx512" | "avx2" | "scalar".
napi_value IsaName(Call& c) { return c.string_value(isa_name(isa())); }

// cpuIsa(): the best path this CPU supports.
napi_value CpuIsaName(Call& c) { return c.string_value(isa_name(cpu_isa())); }

// setIsa(name): forces a path (for tests); throws when the CPU lacks it.
napi_value SetIsa(Call& c) {
  std::string s = c.str(0, "name");
  Isa want;
  if (!parse_isa(s.c_str(), &want)) c.fail("unknown ISA '%s' (avx512 | avx2 | scalar)", s.c_str());
  if (!set_isa(want)) c.fail("this CPU does not support %s (best: %s)", s.c_str(), isa_name(cpu_isa()));
  return c.undefined();
}

}  // namespace

static napi_value Init(napi_env env, napi_value exports) {
  def(env, exports, "setThreads", SetThreads);
  def(env, exports, "getThreads", GetThreads);
  def(env, exports, "isa", IsaName);
  def(env, exports, "cpuIsa", CpuIsaName);
  def(env, exports, "setIsa", SetIsa);
  chimera_register_gemm(env, exports);
  chimera_register_kernels(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
