{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": ["csrc/addon.cc", "csrc/errors.cc", "csrc/netns.cc", "csrc/bpf.cc", "csrc/tcx.cc", "csrc/fs.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lbpf", "-lelf", "-lz", "-lpthread"]
    }
  ]
}
