// aria command-line entry point: dispatches to one subcommand per file in tools/aria/.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "core/error.h"

int main(int argc, char** argv) {
  std::printf("aria: subcommands are being written\n");
  return argc > 1 ? 1 : 0;
}
