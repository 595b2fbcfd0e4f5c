#!/usr/bin/env bash
# The continual trainer's speed table of docs/perf.md (issue 13) on the lent GPU: each row is one
# `aria-bench --continual ... --bf16 --compare-torch` call, aria next to the PyTorch twin (eager and
# torch.compile) on the same GPU in the same process tree. Run after tools/gpu_head_check.sh built
# /tmp/head/build-gpu on the same warm machine (or pass the build folder):
#
#     bash tools/gpu_continual_table.sh [BUILD_DIR] [ROW ...]      ROW: model:seq (default: all below)
#
# Rows in order of importance, so that a call cut short by its time limit still has the target rows:
# 124M/355M at seq 512 (the targets), then seq 128, then 774M and 1.5B (the 1.5B row is also the
# "fits on one 80 GB GPU" check; the twin may run out of memory there, which the row then says).
# Every row writes $OUT/continual_<model>_s<seq>.json; ROW_TIMEOUT (seconds, default 240) caps a row.
set -u
build="${1:-/tmp/head/build-gpu}"
[ $# -gt 0 ] && shift
[ -x "$build/aria-bench" ] || { echo "gpu_continual_table.sh: error: $build/aria-bench is missing (run tools/gpu_head_check.sh first)" >&2; exit 1; }
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(d12:512 d24:512 d12:128 d24:128 d36:512 d48:512 d36:128 d48:128)
out="${OUT:-/tmp/continual-table}"
mkdir -p "$out"
cd "$(dirname "$build")" || exit 1
status=0
for row in "${rows[@]}"; do
  model=${row%%:*} seq=${row#*:}
  echo "== $model seq $seq batch 16 bf16 ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
  t=$SECONDS
  timeout -k 10 "${ROW_TIMEOUT:-240}" "$build/aria-bench" --continual --model "$model" --seq "$seq" --batch 16 \
    --steps 10 --fisher-batches 4 --bf16 --compare-torch --json "$out/continual_${model}_s${seq}.json" 2>&1 | tail -9
  rc=${PIPESTATUS[0]}
  echo "   (rc $rc, $((SECONDS - t)) s)"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
