// The environment variables the programs honour for the library's switches (core/context.h): read
// once at start, before any work, into aria::context(). The library itself reads no environment.
#pragma once
#include <string>

#include "aria/core/context.h"

namespace aria::cli {

// ARIA_TF32=1 -> tf32, ARIA_GEMM_AUTOTUNE=1 -> gemm_autotune, ARIA_GEMM_VERBOSE=1 -> gemm_verbose,
// OMP_NUM_THREADS (a positive integer up to 4096) -> cpu_threads, ARIA_HOME -> home, ARIA_CACHE (else
// $XDG_CACHE_HOME/aria, else $HOME/.cache/aria) -> cache_dir. Unset, empty or any other value leaves
// the field as it is.
void read_environment(Context& c);

// The wait policy the programs run OpenMP with when the user set none (the value of GOMP_SPINCOUNT).
extern const char* const kSpinCount;

// First thing in main(), before any OpenMP region runs: libgomp reads OMP_WAIT_POLICY / GOMP_SPINCOUNT
// once, as it is loaded, before main(). When the user set neither, this sets GOMP_SPINCOUNT=kSpinCount
// and re-executes the program (/proc/self/exe, same arguments; ARIA_CPU_THREADS_SET marks the second
// start), so the spin-then-sleep policy is in force from the first region. If re-execution fails
// the program continues with libgomp's default.
void set_openmp_wait_policy(char** argv);

// The OpenMP settings from the environment, for the CPU line of logs: ", OMP_NUM_THREADS set",
// ", GOMP_SPINCOUNT=10000" or ", libgomp's default wait policy".
std::string openmp_description();

}  // namespace aria::cli
