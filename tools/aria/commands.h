// The subcommands of the aria CLI; each takes the arguments after its name and returns the exit code.
#pragma once

namespace aria::cli {
int cmd_score(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_pretrain(int argc, char** argv);
int cmd_continual(int argc, char** argv);
int cmd_run(int argc, char** argv);
}  // namespace aria::cli
