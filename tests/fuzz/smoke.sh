#!/bin/sh
# ctest's bounded fuzz run (tests/fuzz/CMakeLists.txt): smoke.sh FUZZER CORPUS SECONDS ARTIFACT_DIR
# Runs FUZZER on the committed seed CORPUS for SECONDS. New inputs go to a temporary folder, never
# into the committed corpus; a crash, leak or hang leaves its input in ARTIFACT_DIR and fails the
# test. Exit 77 (ctest: skipped) when the fuzzer is not built.
set -u
bin=$1 corpus=$2 secs=$3 artifacts=$4
if [ ! -x "$bin" ]; then
  echo "ARIA_TEST_SKIPPED: $bin is not built (a clang build with -DARIA_FUZZ=ON: tools/setup.sh makes build-fuzz/)"
  exit 77
fi
[ -d "$corpus" ] || { echo "no seed corpus at $corpus"; exit 1; }
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts" "$work/new"
# libFuzzer's own failure code is 77, ctest's "skipped": ask for 1, and map any failure to 1 below.
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -error_exitcode=1 \
  -artifact_prefix="$artifacts/" "$work/new" "$corpus" > "$work/log" 2>&1
rc=$?
tail -n 30 "$work/log"
if [ $rc -ne 0 ]; then
  echo "fuzz smoke FAILED (exit $rc); reproduce with: $bin $artifacts/<crash-file>"
  ls -l "$artifacts"
  exit 1
fi
exit 0
