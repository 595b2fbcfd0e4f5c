#!/usr/bin/env bash
# cache:base124m on the lent GPU: GPT-2 124M pretrained by aria in bf16 on the large corpus
# (docs/base_model.md), with its learning curve, 3 generated samples and a transformers score check.
#
# Here (the build machine, which has the corpus), once:
#     bash tools/gpu_base124m.sh --pack
#   packs third_party/corpus/{train,validation}.txt, xz-compressed, into build-base124m/ and the
#   header-only build dependencies into build-deps/ (tools/gpu_check.sh --pack).
# There (the GPU machine), as often as needed, carrying
#   ["build-deps", "build-base124m", "third_party/gpt2-vocab"]:
#     bash tools/gpu_base124m.sh
#   Every stage is skipped when its result is there already, so one command finishes what the last
#   one left: build build-gpu/aria, unpack the corpus, tokenize it into third_party/shards, build
#   cache:base124m (ARIA_CACHE=build-gpu/cache) with `aria pretrain --cache base124m --device cuda`.
#   A device call lasts at most 10 minutes and the build about 13, so pretraining is stopped with
#   SIGTERM before the call's end (it checkpoints and exits 143) and the next call continues it, bit
#   for bit. When it is complete: 3 `aria generate` samples and the score of a held-out validation
#   paragraph in aria (cpu, cuda) and in transformers.
# Then the continual protocol's time on this GPU (docs/run.md): `aria run --model cache:base124m
# --device cuda`, the default experiment's protocol on the 124M base (GPU_BASE_RUNS=0 skips it).
# Into $OUT (at most 8 files, each < 16 MiB): log.txt, curve.json, curve.svg, aria-cache.json,
# samples.txt, score_check.json, runs.tar.gz (heldout.txt, build.log, the run's report.json, log.txt,
# report.html, tables/). Exit 0 when everything is done, 3 when pretraining must continue in another
# call, 1 on a failure.
# GPU_BASE_BUDGET (seconds, default 540) is the time this call may use before it stops pretraining.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pack="$root/build-base124m"

if [ "${1:-}" = "--pack" ]; then
  for f in train validation; do
    [ -s "third_party/corpus/$f.txt" ] || { echo "gpu_base124m.sh: error: third_party/corpus/$f.txt is missing: run tools/fetch_corpus.sh first" >&2; exit 1; }
  done
  rm -rf "$pack" && mkdir -p "$pack"
  tar -C third_party/corpus -cf - train.txt validation.txt manifest.json | xz -6 -T0 > "$pack/corpus.tar.xz" || exit 1
  bash tools/gpu_check.sh --pack > /dev/null || exit 1
  du -sh "$pack" build-deps third_party/gpt2-vocab
  echo "packed; on the GPU: bash tools/gpu_base124m.sh with carry [\"build-deps\", \"build-base124m\", \"third_party/gpt2-vocab\"]"
  exit 0
fi
[ $# -eq 0 ] || { echo "gpu_base124m.sh: error: unknown argument '$1' (--pack, or nothing)" >&2; exit 2; }

out="${OUT:-$root/build-gpu/base124m}"
mkdir -p "$out" "$root/build-gpu/extra"
log="$out/log.txt"
extra="$root/build-gpu/extra"  # what comes back packed in runs.tar.gz
budget=${GPU_BASE_BUDGET:-540}
say() { echo "$*" | tee -a "$log"; }
die() { say "gpu_base124m.sh: error: $*"; exit 1; }
say "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"

# 1. aria, built for the H100/H200 (sm_90).
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
prefix=()
[ -d build-deps/usr ] && prefix=(-DCMAKE_PREFIX_PATH="$root/build-deps/usr")
t=$SECONDS
if ! { cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DARIA_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
         "${prefix[@]}" && ninja -C build-gpu -j16 aria; } >> "$extra/build.log" 2>&1; then
  tail -n 30 "$extra/build.log" >> "$log"
  die "build failed (the tail of build.log is above)"
fi
say "build: $((SECONDS - t)) s"
aria="$root/build-gpu/aria"
export ARIA_HOME="$root" ARIA_CACHE="$root/build-gpu/cache"

# 2. The corpus text and its token shards (once).
if [ ! -s third_party/corpus/train.txt ]; then
  [ -s "$pack/corpus.tar.xz" ] || die "no corpus: carry build-base124m/ (made by tools/gpu_base124m.sh --pack)"
  mkdir -p third_party/corpus && xz -dc "$pack/corpus.tar.xz" | tar -C third_party/corpus -xf - || die "cannot unpack the corpus"
fi
if ! ls third_party/shards/validation_*.bin > /dev/null 2>&1; then
  t=$SECONDS
  "$aria" tokenize --text third_party/corpus/train.txt --shards third_party/shards >> "$log" 2>&1 &&
    "$aria" tokenize --text third_party/corpus/validation.txt --shards third_party/shards --split validation >> "$log" 2>&1 ||
    die "tokenizing failed"
  say "tokenize: $((SECONDS - t)) s"
fi

# 3. cache:base124m: pretrain until done or until the budget's end (SIGTERM: checkpoint, exit 143).
left=$((budget - SECONDS - 30))  # 30 s for the checkpoint's save after the signal
[ $left -gt 60 ] || { say "no time left in this call for pretraining: run the script again"; exit 3; }
t=$SECONDS
timeout -s TERM -k 120 "$left" "$aria" pretrain --cache base124m --device cuda > "$out/dir.txt" 2>> "$log"
rc=$?
say "pretrain --cache base124m: rc=$rc after $((SECONDS - t)) s"
if [ $rc -eq 124 ] || [ $rc -eq 143 ]; then
  grep -E "step +[0-9]+/" "$log" | tail -n 2
  say "pretraining continues in the next call: run tools/gpu_base124m.sh again (same carry)"
  exit 3
fi
[ $rc -eq 0 ] || die "aria pretrain --cache base124m failed (rc $rc; log.txt says why)"
dir=$(tail -n 1 "$out/dir.txt")
rm -f "$out/dir.txt"
cp "$dir/curve.json" "$dir/curve.svg" "$dir/aria-cache.json" "$out/" || die "the cache entry $dir lacks its curve"
say "cache:base124m: $dir"
python3 - "$dir/aria-cache.json" <<'PY' | tee -a "$log"
import json, sys
m = json.load(open(sys.argv[1]))
print(f"final train loss {m['final_train_loss']:.4f}, validation loss {m['final_val_loss']:.4f}, "
      f"{m['tokens_per_second']:.0f} tokens/s, training {m.get('train_seconds', 0):.0f} s, {m['parameters']} parameters")
PY

# 4. Three samples.
: > "$out/samples.txt"
i=0
for prompt in "The history of the" "In this chapter we describe how to" "The function returns"; do
  i=$((i + 1))
  { echo "== prompt: $prompt (temperature 0.8, top-k 40, seed $i)"
    "$aria" generate --model "$dir" --prompt "$prompt" --max-new-tokens 80 --seed "$i" --device cuda
    echo; } >> "$out/samples.txt" 2>> "$log"
done
say "samples: samples.txt"

# 5. A held-out paragraph (validation split, 600-2500 characters) scored by aria and transformers.
python3 - third_party/corpus/validation.txt "$extra/heldout.txt" <<'PY'
import sys
paras = [p.strip() for p in open(sys.argv[1], encoding="utf-8").read().split("\n\n")]
pick = next(p for p in paras if 600 <= len(p) <= 2500)
open(sys.argv[2], "w", encoding="utf-8").write(pick + "\n")
PY
status=0
if python3 tools/hf_reference/score_saved_model.py --aria "$aria" --model "$dir" --text "$extra/heldout.txt" \
     > "$out/score_check.json" 2>> "$log"; then
  say "score check: aria equals transformers (score_check.json)"
else
  say "score check FAILED or could not run (score_check.json, log.txt)"
  cat "$out/score_check.json" >> "$log"
  status=1
fi
cat "$out/score_check.json"

# 6. The default experiment's protocol on the 124M base (bf16, the CUDA default): its time split.
if [ "${GPU_BASE_RUNS:-1}" = 1 ]; then
  t=$SECONDS
  cap=$((budget - SECONDS + 40))
  [ $cap -ge 60 ] || cap=60  # the call's own limit stops it anyway
  timeout -k 10 $cap "$aria" run --model cache:base124m --device cuda --no-checkpoints \
    --out "$extra/run124m" --overwrite > "$extra/run124m.out" 2>&1
  rc=$?
  say "aria run --model cache:base124m --device cuda: rc=$rc in $((SECONDS - t)) s"
  grep -A7 "^time (seconds" "$extra/run124m/log.txt" | tee -a "$log"
  [ $rc -eq 0 ] || { tail -n 20 "$extra/run124m.out" >> "$log"; status=1; }
fi
tar -C "$extra" -czf "$out/runs.tar.gz" . || status=1
exit $status
