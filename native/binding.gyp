{
  "targets": [
    {
      "target_name": "chimera_native",
      "sources": ["<!@(ls -1 src/*.cc)"],
      "include_dirs": ["src"],
      "cflags!": ["-fno-exceptions", "-O2", "-fno-omit-frame-pointer"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14", "-std=c++14"],
      "cflags": ["-O3", "-fno-math-errno", "-Wall", "-Wno-unused-function", "-Wno-maybe-uninitialized"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CFLAGS": ["-O3"]
      },
      "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
    }
  ]
}
