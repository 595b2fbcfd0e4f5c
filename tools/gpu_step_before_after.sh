#!/usr/bin/env bash
# Is the training step as fast as before a refactor? (issue 16: "within 1 % of today's time"). Times
# the GPT-2 124M LM step (bf16) and the continual step (aria method, bf16) of two commits on the same
# GPU in one call, alternating them so that clock and thermal drift hit both alike.
#
#   here:    bash tools/gpu_step_before_after.sh --pack REV   # build-snap/before.tar = git archive REV
#   device:  bash tools/gpu_step_before_after.sh [AFTER_BUILD]  # after: /tmp/head/build-gpu (gpu_head_check.sh)
#            carry ["build-deps", "build-snap"]
# Prints every timing and the median of each side; ROUNDS (default 3) alternations.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--pack" ]; then
  rev=${2:?"--pack needs the commit to compare against"}
  mkdir -p "$root/build-snap"
  git -C "$root" archive --format=tar "$rev" > "$root/build-snap/before.tar" || exit 1
  git -C "$root" rev-parse --short "$rev" > "$root/build-snap/before.rev"
  echo "packed $(cat "$root/build-snap/before.rev") into build-snap/before.tar"
  exit 0
fi
after="${1:-/tmp/head/build-gpu}"
[ -x "$after/aria-bench" ] || { echo "gpu_step_before_after.sh: error: $after/aria-bench is missing" >&2; exit 1; }
[ -s "$root/build-snap/before.tar" ] || { echo "gpu_step_before_after.sh: error: no build-snap/before.tar (--pack REV here first)" >&2; exit 1; }
before_src=/tmp/before
if [ ! -x "$before_src/build-gpu/aria-bench" ]; then
  mkdir -p "$before_src" && tar -xf "$root/build-snap/before.tar" -C "$before_src" && cp -r "$root/build-deps" "$before_src/" || exit 1
  [ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
  t=$SECONDS
  (cd "$before_src" && cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DARIA_CUDA=ON \
     -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$before_src/build-deps/usr" -DARIA_PYTHON=OFF > /tmp/before-build.log 2>&1 &&
   ninja -C build-gpu -j16 aria-bench >> /tmp/before-build.log 2>&1) || { tail -20 /tmp/before-build.log; exit 1; }
  echo "built $(cat "$root/build-snap/before.rev" 2>/dev/null) in $((SECONDS - t)) s"
fi
# The step time (ms) of one aria-bench configuration, from its --json output (the first "step_ms").
step_ms() {
  local j=/tmp/before-after-$$.json
  "$1/aria-bench" "${@:2}" --json "$j" >> /tmp/before-after.log 2>&1 || return
  python3 -c 'import json, sys
def find(x):
    if isinstance(x, dict):
        if "step_ms" in x: return x["step_ms"]
        x = list(x.values())
    if isinstance(x, list):
        for v in x:
            r = find(v)
            if r is not None: return r
print(find(json.load(open(sys.argv[1]))))' "$j"
}
declare -A times
for round in $(seq "${ROUNDS:-3}"); do
  for side in before after; do
    build=$([ $side = before ] && echo "$before_src/build-gpu" || echo "$after")
    lm=$(cd "$(dirname "$build")" && step_ms "$build" --model d12 --bf16 --steps 20)
    cl=$(cd "$(dirname "$build")" && step_ms "$build" --continual --model d12 --seq 512 --batch 16 --steps 10 --fisher-batches 2 --bf16)
    echo "round $round $side: LM step ${lm:-?} ms, continual step ${cl:-?} ms"
    times[$side-lm]+="${lm:-nan} " times[$side-cl]+="${cl:-nan} "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for what in lm cl; do
  b=$(echo "${times[before-$what]}" | median) a=$(echo "${times[after-$what]}" | median)
  awk -v w=$what -v b="$b" -v a="$a" 'BEGIN {printf "%s step: before %.2f ms, after %.2f ms, after/before %.4f\n", (w == "lm" ? "LM" : "continual"), b, a, a / b}'
done
