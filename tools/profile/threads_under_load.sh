#!/usr/bin/env bash
# aria pretrain tokens/s on the CPU, idle and under load, for several thread settings (docs/perf.md,
# "CPU threads on a shared machine"). Usage:
#   tools/profile/threads_under_load.sh ARIA_BINARY CORPUS REPEATS [steps]
# Loaded = one `yes > /dev/null` per CPU of this process's affinity mask, started before and stopped
# after each loaded run. Settings run interleaved (one of each per repeat) so that drift in the
# machine's background load spreads over all of them; the median per (setting, load) is printed.
set -euo pipefail
aria=$1 corpus=$2 reps=$3 steps=${4:-12}
# Extra settings to compare: THREADS_EXTRA="OMP_WAIT_POLICY=passive" adds a row with that environment.
ncpu=$(nproc)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
declare -A settings=(
  ["before (libgomp default wait)"]="ARIA_CPU_THREADS_SET=1"
  ["after (spin 10000 then sleep)"]=""
  ["OMP_NUM_THREADS=1"]="OMP_NUM_THREADS=1"
)
[ -n "${THREADS_EXTRA:-}" ] && settings["$THREADS_EXTRA"]="$THREADS_EXTRA"
run_one() {  # $1 = env assignments; prints tokens/s
  rm -rf "$out/model"
  env $1 "$aria" pretrain --corpus "$corpus" --out "$out/model" --preset small-cpu --steps "$steps" \
    --warmup 2 --batch 4 --seq 64 --device cpu 2>/dev/null | sed -n 's/.*, \([0-9.]*\) tokens\/s).*/\1/p'
}
declare -A results
for ((r = 0; r < reps; r++)); do
  for load in idle loaded; do
    pids=()
    if [ $load = loaded ]; then
      for ((c = 0; c < ncpu; c++)); do yes > /dev/null & pids+=($!); done
    fi
    for name in "${!settings[@]}"; do
      tps=$(run_one "${settings[$name]}")
      results["$name|$load"]+="$tps "
      echo "rep $r $load $name: $tps tokens/s (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
    done
    for p in "${pids[@]}"; do kill "$p"; done
    wait 2>/dev/null || true
  done
done
echo "| setting | idle tokens/s (median; runs) | loaded tokens/s (median; runs) |"
echo "| --- | --- | --- |"
for name in "${!settings[@]}"; do
  row="| $name |"
  for load in idle loaded; do
    vals=${results["$name|$load"]}
    med=$(printf '%s\n' $vals | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
    row+=" $med ($vals) |"
  done
  echo "$row"
done
