#!/usr/bin/env bash
# Build and check aria's CUDA backend on a GPU machine (the lent H100), in one call:
#   1. configure + build into build-gpu/ (sm_90, Release, ninja -j16),
#   2. ctest: every test (CPU and CUDA) with --output-on-failure,
#   3. compute-sanitizer memcheck on the CUDA test binaries,
#   4. aria-bench (kernel timings at GPT-2 124M shapes) unless --no-bench.
# Logs go to $OUT (when set) as build.log, ctest.log, memcheck.log, bench.txt, bench.json, summary.txt.
# Every stage runs even when an earlier one failed (except the build); the exit code is non-zero when
# any stage failed.
#
# The GPU machine has no package registry: the header-only build dependencies (Eigen3,
# nlohmann_json, doctest) travel with the tree. Before the call, on the build machine:
#     bash tools/gpu_check.sh --pack          # copies them into build-deps/ (git-ignored)
# then run there, carrying build-deps/ and third_party/ (the GPT-2 vocabulary used by some tests):
#     bash tools/gpu_check.sh                 # carry: ["build-deps", "third_party"]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
deps="$root/build-deps/usr"

if [ "${1:-}" = "--pack" ]; then
  rm -rf "$root/build-deps" && mkdir -p "$deps/include" "$deps/share/cmake" "$deps/lib/cmake"
  cp -r /usr/include/eigen3 "$deps/include/"
  cp -r /usr/include/nlohmann "$deps/include/"
  cp -r /usr/include/doctest "$deps/include/"
  mkdir -p "$deps/share/eigen3" && cp -r /usr/share/eigen3/cmake "$deps/share/eigen3/"
  cp -r /usr/share/cmake/nlohmann_json "$deps/share/cmake/"
  cp -r /usr/lib/cmake/doctest "$deps/lib/cmake/"
  # pybind11 (headers and its CMake config, which locates itself): the Python module and its pytest
  # cases, the GPU ones included, build there too when that machine's python3 has its headers.
  [ -d /usr/include/pybind11 ] && cp -r /usr/include/pybind11 "$deps/include/" && cp -r /usr/lib/cmake/pybind11 "$deps/lib/cmake/"
  # doctest's export file hard-codes /usr; make it relative to where it lies.
  sed -i 's|^set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
    "$deps/lib/cmake/doctest/doctestTargets.cmake"
  du -sh "$root/build-deps"
  echo "packed; now run tools/gpu_check.sh on the GPU machine with carry [\"build-deps\", \"third_party\"]"
  exit 0
fi

bench=1
[ "${1:-}" = "--no-bench" ] && bench=0
budget=${GPU_CHECK_BUDGET:-540}  # seconds; optional stages are skipped past it (one call may run 600 s)
time_left() { [ $SECONDS -lt "$budget" ]; }
out="${OUT:-$root/build-gpu/logs}"
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
status=0
note() { echo "$*" | tee -a "$summary"; }
stage() {  # stage NAME LOG CMD...: runs CMD with output to LOG (and the terminal's tail)
  local name=$1 log=$2
  shift 2
  local t0=$SECONDS
  "$@" >> "$log" 2>&1
  local rc=$?
  note "$(printf '%-28s rc=%-3s %4ss  (%s)' "$name" "$rc" "$((SECONDS - t0))" "$(basename "$log")")"
  [ $rc -ne 0 ] && status=1
  return $rc
}

{
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  cmake --version | head -1
  g++ --version 2>&1 | head -1
  nproc
} > "$out/build.log" 2>&1
note "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"

prefix=()
[ -d "$deps" ] && prefix=(-DCMAKE_PREFIX_PATH="$deps")
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
stage "configure" "$out/build.log" \
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DARIA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 "${prefix[@]}"
if ! stage "build (ninja -j16)" "$out/build.log" ninja -C build-gpu -j16; then
  tail -n 40 "$out/build.log"
  note "build failed: nothing else ran"
  exit 1
fi

# CUDA tests print "SKIPPED (no CUDA GPU)" when they find no GPU: that must not happen here.
if build-gpu/tests/test_cuda_runtime 2>&1 | grep -q "SKIPPED (no CUDA GPU)"; then
  note "ERROR: aria sees no CUDA GPU here: every CUDA test would skip"
  status=1
fi
# All tests, 4 at a time; OpenMP threads split between them (oversubscription makes CPU tests crawl).
jobs=4
export OMP_NUM_THREADS=$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 )) OMP_WAIT_POLICY=PASSIVE
stage "ctest (all, -j$jobs)" "$out/ctest.log" ctest --test-dir build-gpu --output-on-failure --timeout 240 -j$jobs
unset OMP_NUM_THREADS OMP_WAIT_POLICY
grep -E "tests passed|tests failed|Total Test time|\*\*\*(Failed|Timeout)|Not Run|\(Skipped\)" "$out/ctest.log" | tee -a "$summary"
# A C++ test case ("binary/case") that ctest reports as skipped found no GPU: that must not happen here.
if grep -qE "[^ ]+/.* \(Skipped\)" "$out/ctest.log"; then
  note "ERROR: C++ test cases were skipped on the GPU machine (listed above)"
  status=1
fi

# memcheck on the CUDA test binaries (the out-of-memory test is left out: memcheck reports the
# intended failed cudaMalloc as an API error). test_cuda_kernels (large shapes) goes last, if time is left.
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null | head -1)
memcheck() {  # memcheck BINARY TIMEOUT [doctest args]
  local t=$1 limit=$2
  shift 2
  echo "== $t" >> "$out/memcheck.log"
  stage "memcheck $t" "$out/memcheck.log" timeout "$limit" "$sanitizer" --tool memcheck --error-exitcode 1 \
    "build-gpu/tests/$t" "$@"
}
if [ -n "$sanitizer" ]; then
  memcheck test_cuda_runtime 120 -tce="out of memory*"
  memcheck test_cuda_vs_cpu 240
else
  note "compute-sanitizer not found: memcheck not run"
  status=1
fi

if [ $bench -eq 1 ]; then
  if time_left; then
    stage "aria-bench" "$out/bench.txt" timeout 180 build-gpu/aria-bench --json "$out/bench.json"
    cat "$out/bench.txt"
  else
    note "aria-bench skipped: past the ${budget}s budget"
  fi
fi

if [ -n "$sanitizer" ]; then
  left=$((budget - SECONDS))
  if [ $left -gt 60 ]; then
    memcheck test_cuda_kernels "$left"
  else
    note "memcheck test_cuda_kernels skipped: past the ${budget}s budget"
  fi
  grep -E "^== |ERROR SUMMARY" "$out/memcheck.log" | tee -a "$summary"
fi

echo
echo "== summary"
cat "$summary"
exit $status
