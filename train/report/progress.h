// A small progress printer with rate and ETA, for any loop with a known number of steps:
//   Progress p(std::cerr, total, "train");
//   for (...) { ...; p.update(step + 1, "loss 3.21 | lr 6.0e-04"); }
//   p.finish();
// On a terminal it redraws one line with '\r' (at most ~10 times a second, and always for the
// last step); on a file or pipe it writes a plain line every `every` steps and at the last one.
// message() prints a line of its own (an eval result) without mangling the progress line.
#pragma once
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace aria {

// True when `os` is std::cout / std::cerr / std::clog and that stream's file descriptor is a tty.
bool is_terminal(const std::ostream& os);

// "45s", "3m07s", "2h05m".
std::string format_duration(double seconds);

class Progress {
 public:
  Progress(std::ostream& out, int64_t total, std::string label = "", int64_t every = 10);
  Progress(std::ostream& out, int64_t total, std::string label, int64_t every, bool terminal);

  // `done` steps of `total` are finished; `fields` is shown after "label done/total".
  void update(int64_t done, const std::string& fields);
  void message(const std::string& line);
  void finish();  // ends the '\r' line on a terminal

  double elapsed_seconds() const;
  // Seconds left at the average rate so far (negative when unknown: nothing done yet).
  double eta_seconds(int64_t done) const;

 private:
  std::ostream& out_;
  int64_t total_, every_;
  std::string label_;
  bool terminal_;
  bool line_open_ = false;  // a '\r' line is on screen
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace aria
