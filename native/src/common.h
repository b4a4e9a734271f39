// Shared helpers for the chimera_native addon (N-API C API, exceptions enabled).
//
// Writing a kernel binding:
//
//   #include "common.h"
//   using namespace chimera;
//
//   // relu(x: Float32Array, y: Float32Array, n: number): void
//   static napi_value Relu(Call& c) {
//     F32 x = c.f32(0, "x");
//     F32 y = c.f32(1, "y");
//     int64_t n = c.size(2, "n");            // non-negative integer
//     c.need(x, n, "x");                     // throws "relu: x has length 3, needs >= 4"
//     c.need(y, n, "y");
//     if (n % 2) c.fail("n must be even (got %lld)", (long long)n);  // printf-style, "relu: " prefix
//     switch (isa()) { case Isa::Avx512: relu_avx512(x.data, y.data, n); break; ... }
//     return c.undefined();
//   }
//
//   void chimera_register_kernels(napi_env env, napi_value exports) {
//     def(env, exports, "relu", Relu);       // JS name doubles as the error prefix
//   }
//
// Getters by argument index: f32 / i32 / u8 (typed arrays, element type checked),
// f32_or_null / i32_or_null / u8_or_null (null or undefined -> empty Span with data == nullptr),
// integer (finite integral number), size (integer >= 0), num, boolean, str, ints (JS array of
// integers), obj (an object; the same getters then take a property name: c.obj(0, "args").f32("q")).
// Every getter throws JsError("<kernel>: ...") on a wrong type; the trampoline installed by def()
// turns it into a JS Error, so nothing is touched after a failed check.
// Threads: threadpool.h (parallel_for, parallel_run; plan the split from the nthreads that
// parallel_run passes in, which is 1 when the pool is busy). Do not throw from inside their
// bodies (workers would terminate): validate first.
//
// ISA: isa() is the active path (best the CPU supports, lowered by CHIMERA_ISA=avx512|avx2|scalar
// or by the JS setIsa(name)). Compile ISA-specific functions with CHIMERA_TARGET_AVX512 /
// CHIMERA_TARGET_AVX2 (function attributes; no global -m flags, so the addon loads anywhere).
// Lambdas do not inherit the attribute: call attributed static functions from them.
#pragma once

#include <node_api.h>

#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#define CHIMERA_X86 1
#define CHIMERA_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define CHIMERA_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define CHIMERA_X86 0  // only the scalar path exists; guard intrinsics code with #if CHIMERA_X86
#endif

// Implemented in gemm.cc / kernels_*.cc; called from the module init in addon.cc.
void chimera_register_gemm(napi_env env, napi_value exports);
void chimera_register_kernels(napi_env env, napi_value exports);

namespace chimera {

// ---------------------------------------------------------------- ISA selection

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

inline const char* isa_name(Isa i) {
  return i == Isa::Avx512 ? "avx512" : i == Isa::Avx2 ? "avx2" : "scalar";
}

// Best path this CPU (and OS) supports.
inline Isa cpu_isa() {
  static const Isa best = [] {
#if !CHIMERA_X86
    return Isa::Scalar;
#else
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
      return Isa::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
    return Isa::Scalar;
#endif
  }();
  return best;
}

// Parses "avx512" | "avx2" | "scalar"; returns false for anything else.
inline bool parse_isa(const char* s, Isa* out) {
  if (!s) return false;
  if (!strcmp(s, "avx512")) { *out = Isa::Avx512; return true; }
  if (!strcmp(s, "avx2")) { *out = Isa::Avx2; return true; }
  if (!strcmp(s, "scalar")) { *out = Isa::Scalar; return true; }
  return false;
}

inline std::atomic<int>& isa_slot() {
  static std::atomic<int> slot{[] {
    Isa best = cpu_isa(), want;
    if (parse_isa(getenv("CHIMERA_ISA"), &want) && (int)want < (int)best) best = want;
    return (int)best;
  }()};
  return slot;
}

// The path kernels should take now.
inline Isa isa() { return (Isa)isa_slot().load(std::memory_order_relaxed); }

// Forces a path; returns false (and changes nothing) when the CPU lacks it.
inline bool set_isa(Isa want) {
  if ((int)want > (int)cpu_isa()) return false;
  isa_slot().store((int)want, std::memory_order_relaxed);
  return true;
}

// ---------------------------------------------------------------- errors

// Thrown to abort a binding; def()'s trampoline converts it to a JS Error carrying msg.
struct JsError {
  std::string msg;
};

__attribute__((format(printf, 1, 2))) inline std::string strf(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// ---------------------------------------------------------------- argument access

template <typename T>
struct Span {
  T* data = nullptr;
  int64_t len = 0;
  T& operator[](int64_t i) const { return data[i]; }
  bool null() const { return data == nullptr; }
};
using F32 = Span<float>;
using I32 = Span<int32_t>;
using U8 = Span<uint8_t>;

template <typename T> struct TypedArrayKind;
template <> struct TypedArrayKind<float> { static constexpr napi_typedarray_type type = napi_float32_array; static constexpr const char* name = "Float32Array"; };
template <> struct TypedArrayKind<int32_t> { static constexpr napi_typedarray_type type = napi_int32_array; static constexpr const char* name = "Int32Array"; };
template <> struct TypedArrayKind<uint8_t> { static constexpr napi_typedarray_type type = napi_uint8_array; static constexpr const char* name = "Uint8Array"; };

class Obj;

// Conversions shared by positional arguments (Call) and object properties (Obj).
// `label` names the value in messages ("x", "args.q").
class Reader {
 public:
  Reader(napi_env env, const char* kernel) : env(env), kernel(kernel) {}
  napi_env env;
  const char* kernel;

  [[noreturn]] void fail_str(const std::string& msg) const { throw JsError{std::string(kernel) + ": " + msg}; }
  [[noreturn]] __attribute__((format(printf, 2, 3))) void fail(const char* fmt, ...) const {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fail_str(buf);
  }

  napi_valuetype type_of(napi_value v) const {
    napi_valuetype t = napi_undefined;
    napi_typeof(env, v, &t);
    return t;
  }

  template <typename T>
  Span<T> typed(napi_value v, const std::string& label, bool nullable) const {
    napi_valuetype t = type_of(v);
    if (nullable && (t == napi_null || t == napi_undefined)) return {};
    bool is_ta = false;
    napi_is_typedarray(env, v, &is_ta);
    if (!is_ta) fail("%s must be a %s%s", label.c_str(), TypedArrayKind<T>::name, nullable ? " or null" : "");
    napi_typedarray_type ty;
    size_t len = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, v, &ty, &len, &data, nullptr, nullptr) != napi_ok)
      fail("%s: cannot read typed array", label.c_str());
    if (ty != TypedArrayKind<T>::type) fail("%s must be a %s (got another typed array)", label.c_str(), TypedArrayKind<T>::name);
    static T dummy{};
    // A zero-length (or detached) array may report data == nullptr; keep null() meaning "absent".
    return Span<T>{data ? (T*)data : &dummy, (int64_t)len};
  }

  double number(napi_value v, const std::string& label) const {
    if (type_of(v) != napi_number) fail("%s must be a number", label.c_str());
    double d = 0;
    napi_get_value_double(env, v, &d);
    return d;
  }

  int64_t integer(napi_value v, const std::string& label) const {
    double d = number(v, label);
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0)
      fail("%s must be an integer (got %g)", label.c_str(), d);
    return (int64_t)d;
  }

  int64_t size(napi_value v, const std::string& label) const {
    int64_t i = integer(v, label);
    if (i < 0) fail("%s must be >= 0 (got %lld)", label.c_str(), (long long)i);
    return i;
  }

  bool boolean(napi_value v, const std::string& label) const {
    if (type_of(v) != napi_boolean) fail("%s must be a boolean", label.c_str());
    bool b = false;
    napi_get_value_bool(env, v, &b);
    return b;
  }

  std::string str(napi_value v, const std::string& label) const {
    if (type_of(v) != napi_string) fail("%s must be a string", label.c_str());
    size_t n = 0;
    napi_get_value_string_utf8(env, v, nullptr, 0, &n);
    std::string s(n, '\0');
    napi_get_value_string_utf8(env, v, &s[0], n + 1, &n);
    return s;
  }

  std::vector<int64_t> ints(napi_value v, const std::string& label) const {
    bool is_arr = false;
    napi_is_array(env, v, &is_arr);
    if (!is_arr) fail("%s must be an array of integers", label.c_str());
    uint32_t n = 0;
    napi_get_array_length(env, v, &n);
    std::vector<int64_t> out(n);
    for (uint32_t i = 0; i < n; i++) {
      napi_value e;
      napi_get_element(env, v, i, &e);
      out[i] = integer(e, label + "[" + std::to_string(i) + "]");
    }
    return out;
  }

  // Throws unless s.len >= n.
  template <typename T>
  void need(const Span<T>& s, int64_t n, const char* what) const {
    if (s.len < n) fail("%s has length %lld, needs >= %lld", what, (long long)s.len, (long long)n);
  }

  // Overflow-checked a * b (sizes from JS can be large).
  int64_t mul(int64_t a, int64_t b) const {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) fail("size overflow (%lld * %lld)", (long long)a, (long long)b);
    return r;
  }
  int64_t mul(std::initializer_list<int64_t> xs) const {
    int64_t r = 1;
    for (int64_t x : xs) r = mul(r, x);
    return r;
  }

  napi_value undefined() const {
    napi_value u;
    napi_get_undefined(env, &u);
    return u;
  }
  napi_value number_value(double d) const {
    napi_value v;
    napi_create_double(env, d, &v);
    return v;
  }
  napi_value string_value(const char* s) const {
    napi_value v;
    napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
    return v;
  }
};

// An object argument; getters take property names. Labels read "<objlabel>.<key>".
class Obj : public Reader {
 public:
  Obj(const Reader& r, napi_value o, std::string label) : Reader(r), o_(o), label_(std::move(label)) {}

  napi_value get(const char* key) const {
    napi_value v;
    if (napi_get_named_property(env, o_, key, &v) != napi_ok) fail("%s.%s: cannot read property", label_.c_str(), key);
    return v;
  }
  std::string lab(const char* key) const { return label_ + "." + key; }

  F32 f32(const char* k) const { return typed<float>(get(k), lab(k), false); }
  I32 i32(const char* k) const { return typed<int32_t>(get(k), lab(k), false); }
  U8 u8(const char* k) const { return typed<uint8_t>(get(k), lab(k), false); }
  F32 f32_or_null(const char* k) const { return typed<float>(get(k), lab(k), true); }
  I32 i32_or_null(const char* k) const { return typed<int32_t>(get(k), lab(k), true); }
  U8 u8_or_null(const char* k) const { return typed<uint8_t>(get(k), lab(k), true); }
  int64_t integer(const char* k) const { return Reader::integer(get(k), lab(k)); }
  int64_t size(const char* k) const { return Reader::size(get(k), lab(k)); }
  double num(const char* k) const { return Reader::number(get(k), lab(k)); }
  bool boolean(const char* k) const { return Reader::boolean(get(k), lab(k)); }
  std::string str(const char* k) const { return Reader::str(get(k), lab(k)); }
  std::vector<int64_t> ints(const char* k) const { return Reader::ints(get(k), lab(k)); }

 private:
  napi_value o_;
  std::string label_;
};

// The arguments of one call; getters take an index and a name for messages.
class Call : public Reader {
 public:
  static constexpr size_t kMaxArgs = 32;
  Call(napi_env env, const char* kernel, size_t argc, napi_value* argv) : Reader(env, kernel), argc_(argc), argv_(argv) {}

  size_t argc() const { return argc_; }
  napi_value arg(size_t i, const char* what) const {
    if (i >= argc_) fail("missing argument %zu (%s)", i, what);
    return argv_[i];
  }

  F32 f32(size_t i, const char* what) const { return typed<float>(arg(i, what), what, false); }
  I32 i32(size_t i, const char* what) const { return typed<int32_t>(arg(i, what), what, false); }
  U8 u8(size_t i, const char* what) const { return typed<uint8_t>(arg(i, what), what, false); }
  // Missing trailing arguments count as null too.
  F32 f32_or_null(size_t i, const char* what) const { return i < argc_ ? typed<float>(argv_[i], what, true) : F32{}; }
  I32 i32_or_null(size_t i, const char* what) const { return i < argc_ ? typed<int32_t>(argv_[i], what, true) : I32{}; }
  U8 u8_or_null(size_t i, const char* what) const { return i < argc_ ? typed<uint8_t>(argv_[i], what, true) : U8{}; }
  int64_t integer(size_t i, const char* what) const { return Reader::integer(arg(i, what), what); }
  int64_t size(size_t i, const char* what) const { return Reader::size(arg(i, what), what); }
  double num(size_t i, const char* what) const { return Reader::number(arg(i, what), what); }
  bool boolean(size_t i, const char* what) const { return Reader::boolean(arg(i, what), what); }
  std::string str(size_t i, const char* what) const { return Reader::str(arg(i, what), what); }
  std::vector<int64_t> ints(size_t i, const char* what) const { return Reader::ints(arg(i, what), what); }
  Obj obj(size_t i, const char* what) const {
    napi_value v = arg(i, what);
    if (type_of(v) != napi_object) fail("%s must be an object", what);
    return Obj(*this, v, what);
  }

 private:
  size_t argc_;
  napi_value* argv_;
};

// ---------------------------------------------------------------- registration

using Binding = napi_value (*)(Call&);

namespace detail {
struct Entry {
  const char* name;
  Binding fn;
};

inline napi_value trampoline(napi_env env, napi_callback_info info) {
  size_t argc = Call::kMaxArgs;
  napi_value argv[Call::kMaxArgs];
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  if (argc > Call::kMaxArgs) argc = Call::kMaxArgs;
  const Entry* e = (const Entry*)data;
  try {
    Call c(env, e->name, argc, argv);
    return e->fn(c);
  } catch (const JsError& err) {
    napi_throw_error(env, nullptr, err.msg.c_str());
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, (std::string(e->name) + ": out of memory").c_str());
  } catch (const std::exception& ex) {
    napi_throw_error(env, nullptr, (std::string(e->name) + ": " + ex.what()).c_str());
  }
  return nullptr;
}
}  // namespace detail

// exports[name] = fn, wrapped so that JsError / std::exception become JS Errors.
inline void def(napi_env env, napi_value exports, const char* name, Binding fn) {
  // One entry per registration, alive for the process (module init runs once per environment).
  auto* e = new detail::Entry{name, fn};
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, detail::trampoline, e, &f);
  napi_set_named_property(env, exports, name, f);
}

}  // namespace chimera
