#!/usr/bin/env bash
# The continual trainer's speed table of docs/perf.md (issue 13) on the lent GPU: each row is one
# `aria-bench --continual ... --bf16 --compare-torch` call, aria next to the PyTorch twin (eager and
# torch.compile) on the same GPU in the same process tree. Run after tools/gpu_head_check.sh built
# /tmp/head/build-gpu on the same warm machine (or pass the build folder):
#
#     bash tools/gpu_continual_table.sh [BUILD_DIR] [ROW ...]      ROW: model:seq[:batch] (default: all below)
#
# Rows in order of importance, so that a call cut short by its time limit still has the target rows:
# 124M/355M at seq 512 (the targets), then seq 128, then 774M and 1.5B (the 1.5B row is also the
# "fits on one 80 GB GPU" check, at batch 8 at seq 512: batch 16 ran out of memory on the H100; the
# twin may run out of memory there too, which the row then says). Batch 16 unless a row names one.
# Every row writes $OUT/continual_<model>_s<seq>[_b<batch>].json; ROW_TIMEOUT (seconds, default 240)
# caps a row (the d36/d48 rows' torch.compile alone takes minutes: give them 400).
set -u
build="${1:-/tmp/head/build-gpu}"
[ $# -gt 0 ] && shift
[ -x "$build/aria-bench" ] || { echo "gpu_continual_table.sh: error: $build/aria-bench is missing (run tools/gpu_head_check.sh first)" >&2; exit 1; }
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(d12:512 d24:512 d12:128 d24:128 d36:512 d48:512:8 d36:128 d48:128)
out="${OUT:-/tmp/continual-table}"
mkdir -p "$out"
cd "$(dirname "$build")" || exit 1
status=0
for row in "${rows[@]}"; do
  IFS=: read -r model seq batch <<< "$row"
  batch=${batch:-16} name="continual_${model}_s${seq}"
  [ "$batch" = 16 ] || name+="_b$batch"
  echo "== $model seq $seq batch $batch bf16 ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
  t=$SECONDS
  timeout -k 10 "${ROW_TIMEOUT:-240}" "$build/aria-bench" --continual --model "$model" --seq "$seq" --batch "$batch" \
    --steps 10 --fisher-batches 4 --bf16 --compare-torch --json "$out/$name.json" 2>&1 | tail -9
  rc=${PIPESTATUS[0]}
  echo "   (rc $rc, $((SECONDS - t)) s)"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
