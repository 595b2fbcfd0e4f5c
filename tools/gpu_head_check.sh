#!/usr/bin/env bash
# Checks the COMMITTED tree (HEAD) on the lent GPU in one device call, whatever is uncommitted in the
# working tree (other people's edits in progress travel with it too). Two halves:
#
#   here:     bash tools/gpu_head_check.sh --pack     # build-snap/head.tar = git archive HEAD (+ build-deps)
#   device:   bash tools/gpu_head_check.sh [quick]    # carry ["build-deps", "third_party/gpt2-vocab",
#                                                     #        "third_party/data", "build-snap"]
#
# On the device it unpacks HEAD into /tmp/head, builds build-gpu/ there (tools/gpu_quick.sh), runs the
# GPU tests of the newest work verbosely, then the whole ctest suite, then the continual trainer's
# bench at GPT-2 124M (seq 512, batch 16) in bf16 next to the PyTorch twin, and in fp32. "quick" stops after the GPU tests,
# "suite" after the whole ctest suite.
# Logs land in $OUT.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--pack" ]; then
  mkdir -p "$root/build-snap"
  git -C "$root" archive --format=tar HEAD > "$root/build-snap/head.tar"
  [ -d "$root/build-deps" ] || bash "$root/tools/gpu_check.sh" --pack
  echo "packed $(git -C "$root" rev-parse --short HEAD) into build-snap/head.tar"
  exit 0
fi
out="${OUT:-/tmp/head-logs}"
mkdir -p /tmp/head "$out" && tar -xf "$root/build-snap/head.tar" -C /tmp/head && cp -r "$root/build-deps" /tmp/head/ &&
  mkdir -p /tmp/head/third_party && cp -r "$root/third_party/gpt2-vocab" "$root/third_party/data" /tmp/head/third_party/ ||
  { echo "cannot unpack build-snap/head.tar (run --pack here first)"; exit 1; }
cd /tmp/head
export ARIA_HOME=/tmp/head
mode="${1:-}"
# The tokenizer.json parity fixtures (Hugging Face tokenizers, installed there): written into the tree
# before the tests, so test_tokenizer_hf checks them in the ctest run below; they come back packed.
# (Committed since session 10: "suite" skips them.)
if [ "$mode" != suite ]; then
  python3 tools/hf_reference/make_tokenizer_fixtures.py > "$out/tokfix.log" 2>&1 &&
    tar -czf "$out/tokenizer_fixtures.tar.gz" tests/fixtures/tokenizers || echo "tokenizer fixtures: FAILED (tokfix.log)"
fi
# The Llama-family parity fixtures (transformers; tests/test_llama_parity checks them), made while
# the build runs and packed for the way back; absent fixtures only make their cases skip.
llamafix=
if [ -f tools/hf_reference/make_llama_fixtures.py ] && [ ! -f tests/fixtures/llama/llama/expected.json ]; then
  (python3 tools/hf_reference/make_llama_fixtures.py > "$out/llamafix.log" 2>&1 &&
     tar -czf "$out/llama_fixtures.tar.gz" tests/fixtures/llama || echo "llama fixtures: FAILED (llamafix.log)") &
  llamafix=$!
fi
# The device tool brings back at most 8 files: the logs travel as one archive (pack_logs at exit).
pack_logs() { (cd "$out" && tar -czf logs.tar.gz ./*.log && rm -f ./*.log); }
trap pack_logs EXIT
if [ "$mode" = suite ]; then  # build only: the whole ctest below runs every GPU test
  OUT="$out" bash tools/gpu_quick.sh -c "nvidia-smi --query-gpu=name --format=csv,noheader"
else
  OUT="$out" bash tools/gpu_quick.sh test_continual_twin:-s test_cuda_continual_bf16:-s test_spc "test_gated_fused:-tc=*spc*" \
    test_cuda_runtime test_cuda_host_syncs test_count_correct test_fisher test_adamw \
    test_cuda_llama_ops test_cuda_vs_cpu test_cuda_attention_bf16 test_llama_ops test_gradcheck \
    -c "nvidia-smi --query-gpu=name --format=csv,noheader"
fi
status=$?
[ -n "$llamafix" ] && { wait "$llamafix"; tail -4 "$out/llamafix.log"; }
[ "$mode" = quick ] && exit $status
(cd build-gpu && timeout "${CTEST_LIMIT:-240}" ctest -j16 --output-on-failure > "$out/ctest.log" 2>&1) || status=1
grep -E "\(Failed\)|\(Skipped\)|Timeout|tests passed|Total Test time" "$out/ctest.log" | head -30
[ "$mode" = suite ] && exit $status
# The continual step next to the PyTorch twin (eager and torch.compile) in bf16, then float32 alone.
timeout 200 build-gpu/aria-bench --continual --model d12 --seq 512 --batch 16 --steps 10 --fisher-batches 4 --bf16 \
  --compare-torch --json "$out/continual_d12.json" 2>&1 | tail -8
timeout 60 build-gpu/aria-bench --continual --model d12 --seq 512 --batch 16 --steps 10 --fisher-batches 4 2>&1 | tail -2
exit $status
