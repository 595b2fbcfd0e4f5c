#!/usr/bin/env bash
# Issue 15's headline experiment on the lent GPU, from nothing: cache:base124m (tools/gpu_base124m.sh),
# then experiments/headline_124m.json (every method and ablation, 3 seeds x 3 task orders, one epoch
# per task, bf16) tuned on the validation split (`aria run --tune`), all in one lease of back-to-back
# calls: nothing survives a lease, so the base and the experiment must be made in the same one.
#
# Here, once:   bash tools/gpu_base124m.sh --pack       (the corpus, xz, into build-base124m/)
# There, again and again while it exits 3, each call within 30 s of the last (the machine stays warm):
#     bash tools/gpu_headline.sh       carry ["build-deps", "build-base124m", "third_party/gpt2-vocab",
#                                              "third_party/data"]
# Each call stops its work with SIGTERM before GPU_BASE_BUDGET seconds (default 560): pretraining and
# `aria run` checkpoint on it, and the next call continues (`aria run --resume`). Tuning is not
# resumable: it starts only in a call with TUNE_NEEDS seconds (default 480) left, else the call ends
# (exit 3) and the next one starts it.
# Into $OUT: the base's files (gpu_base124m.sh) in the call that finishes it, progress.txt (every
# call), and headline.tar.gz (report.json, report.html, log.txt, tuning.json, config.json, tables/)
# when the experiment is done. Exit 0: done; 3: call again; 1: failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
out="${OUT:-$root/build-gpu/headline-out}"
mkdir -p "$out"
budget=${GPU_BASE_BUDGET:-560}
progress="$out/progress.txt"
say() { echo "$*" | tee -a "$progress"; }

# 1. The base (build, shards, pretraining, samples, score check) until gpu_base124m.sh says done.
if [ ! -f build-gpu/base124m.done ]; then
  GPU_BASE_RUNS=0 GPU_BASE_BUDGET=$budget bash tools/gpu_base124m.sh
  rc=$?
  [ $rc -eq 0 ] && touch build-gpu/base124m.done
  [ $rc -eq 3 ] && { say "base124m: pretraining continues in the next call"; exit 3; }
  [ $rc -eq 0 ] || { say "base124m failed (rc $rc; log.txt)"; exit 1; }
fi
aria="$root/build-gpu/aria"
export ARIA_HOME="$root" ARIA_CACHE="$root/build-gpu/cache"
dir="$root/build-gpu/headline"

# 2. The experiment: start it (tuning first) or continue it.
left=$((budget - SECONDS))
if [ -f "$dir/resume/state.json" ]; then
  cmd=("$aria" run --resume "$dir")
else
  tune_needs=${TUNE_NEEDS:-480}
  [ $left -ge "$tune_needs" ] || { say "headline: $left s left in this call, tuning needs $tune_needs: call again"; exit 3; }
  cmd=("$aria" run --config experiments/headline_124m.json --tune --out "$dir" --overwrite)
fi
t=$SECONDS
say "headline: ${cmd[*]} ($left s left in this call)"
timeout -s TERM -k 60 "$left" "${cmd[@]}" > "$root/build-gpu/headline.out" 2>&1
rc=$?
grep -E "^aria run --tune:|tune [a-z-]+:" "$root/build-gpu/headline.out" | tail -n 5 >> "$progress"
tail -n 3 "$root/build-gpu/headline.out" | tee -a "$progress"
say "headline: rc $rc after $((SECONDS - t)) s"
if [ $rc -eq 124 ] || [ $rc -eq 143 ] || [ $rc -eq 130 ] || [ $rc -eq 137 ]; then
  [ -f "$dir/resume/state.json" ] || say "headline: stopped before the experiment began (tuning is redone next call)"
  exit 3
fi
[ $rc -eq 0 ] || { tail -n 30 "$root/build-gpu/headline.out" >> "$progress"; exit 1; }
tar -C "$dir" -czf "$out/headline.tar.gz" --exclude checkpoints --exclude resume . || exit 1
grep -A14 "^metrics (percent" "$dir/log.txt" | tee -a "$progress"
grep -A14 "^time (seconds" "$dir/log.txt" | tee -a "$progress"
exit 0
