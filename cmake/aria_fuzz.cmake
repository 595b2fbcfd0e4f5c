# Fuzzing (tests/fuzz, docs/fuzzing.md): a separate clang build folder (tools/setup.sh makes build-fuzz/)
# in which the whole library carries libFuzzer's coverage hooks, ASan and UBSan (any UBSan report
# aborts, so the fuzzer counts it). `ninja fuzzers` builds the harnesses (tests/fuzz/CMakeLists.txt).
option(ARIA_FUZZ "Build the libFuzzer harnesses in tests/fuzz (clang only)" OFF)
if(ARIA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "ARIA_FUZZ needs clang (CXX=clang++), got ${CMAKE_CXX_COMPILER_ID}")
  endif()
  # -O1 (libFuzzer's advice) whatever the build type: fast enough to run, much faster to compile than -O2.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
                      -g -O1)
  add_link_options(-fsanitize=address,undefined)
endif()
