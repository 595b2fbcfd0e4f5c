// The test programs' main: doctest's, after reading the environment into aria::context() as the aria
// programs do (tools/aria/environment.h). ctest runs every suite with OMP_NUM_THREADS=1, which fixes
// the CPU team (Context::cpu_threads); a case may still set a field itself.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "aria/core/context.h"
#include "tools/aria/environment.h"

int main(int argc, char** argv) {
  aria::cli::read_environment(aria::context());
  return doctest::Context(argc, argv).run();
}
