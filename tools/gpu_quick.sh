#!/usr/bin/env bash
# Quick GPU iteration on the lent H100 (a cheaper sibling of tools/gpu_check.sh): build build-gpu/
# (sm_90, Release), run the named test binaries (doctest filters allowed after a colon, e.g.
# "test_cuda_bf16_nn:-tc=*adamw*"), then any shell commands given with -c. Logs to $OUT.
#   bash tools/gpu_quick.sh test_cuda_vs_cpu test_cuda_bf16_nn -c "build-gpu/aria-bench --model d12 --bf16"
# Carry ["build-deps", "third_party/gpt2-vocab", "third_party/data"] (see tools/gpu_check.sh --pack).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-build-gpu/logs}"
mkdir -p "$out"
export PATH="/usr/local/cuda/bin:$PATH"
prefix=()
[ -d build-deps/usr ] && prefix=(-DCMAKE_PREFIX_PATH="$PWD/build-deps/usr")
# The Python module and its pytest suite (with the GPU cases: DLPack with torch, a bf16 step) for the
# python3 on PATH when it has pytest and numpy (the GPU box's /usr/bin/python3 has neither).
py=$(command -v python3)
if [ -n "$py" ] && [ "$py" != /usr/bin/python3 ] && "$py" -c 'import pytest, numpy' 2>/dev/null; then
  prefix+=(-DPython3_EXECUTABLE="$py")
fi
t0=$SECONDS
# -k 0: a target that fails to build does not stop the others (its tests are then missing).
if ! { cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DARIA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
         "${prefix[@]}" && ninja -C build-gpu -j16 -k 0; } > "$out/build.log" 2>&1; then
  grep -E "error|FAILED" "$out/build.log" | head -40
  echo "BUILD FAILED (some targets; continuing with what built)"
  [ -x build-gpu/aria-bench ] || exit 1
fi
echo "build ok in $((SECONDS - t0)) s"
status=0
cmds=()
while [ $# -gt 0 ]; do
  if [ "$1" = "-c" ]; then cmds+=("$2"); shift 2; continue; fi
  name=${1%%:*}
  args=()
  [ "$1" != "$name" ] && args=("${1#*:}")
  t=$SECONDS
  timeout 300 "build-gpu/tests/$name" "${args[@]}" > "$out/$name.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && status=1
  echo "== $name rc=$rc $((SECONDS - t)) s: $(grep -E '^\[doctest\] (test cases|assertions)' "$out/$name.log" | tr '\n' ' ')"
  # testing::skip_case lines: no GPU, or a timing printout whose ARIA_*_BENCH=1 was not set
  grep -E '^SKIPPED \(' "$out/$name.log" | sort | uniq -c | head -5
  [ $rc -ne 0 ] && grep -E -B3 -A12 "ERROR|FATAL|error:" "$out/$name.log" | head -60
  shift
done
for c in "${cmds[@]}"; do
  echo "== $c"
  bash -c "$c" 2>&1 | tail -60
done
exit $status
