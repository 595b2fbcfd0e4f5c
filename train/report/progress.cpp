#include "aria/train/report/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

namespace aria {

bool is_terminal(const std::ostream& os) {
  if (&os == &std::cout) return ::isatty(STDOUT_FILENO) != 0;
  if (&os == &std::cerr || &os == &std::clog) return ::isatty(STDERR_FILENO) != 0;
  return false;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  return buf;
}

Progress::Progress(std::ostream& out, int64_t total, std::string label, int64_t every)
    : Progress(out, total, std::move(label), every, is_terminal(out)) {}

Progress::Progress(std::ostream& out, int64_t total, std::string label, int64_t every, bool terminal)
    : out_(out), total_(total), every_(every < 1 ? 1 : every), label_(std::move(label)), terminal_(terminal) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::eta_seconds(int64_t done) const {
  if (done <= 0) return -1;
  return elapsed_seconds() / double(done) * double(total_ - done);
}

void Progress::update(int64_t done, const std::string& fields) {
  const bool last = done >= total_;
  const auto now = std::chrono::steady_clock::now();
  if (terminal_) {
    if (!last && line_open_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else if (!last && done != 1 && done % every_ != 0) {
    return;
  }
  last_draw_ = now;
  std::string line = label_.empty() ? "" : label_ + " ";
  line += std::to_string(done) + "/" + std::to_string(total_);
  if (!fields.empty()) line += " | " + fields;
  line += " | " + format_duration(elapsed_seconds());
  if (!last) line += " | ETA " + format_duration(eta_seconds(done));
  if (terminal_) {
    out_ << "\r" << line << "\033[K" << std::flush;
    line_open_ = true;
  } else {
    out_ << line << "\n" << std::flush;
  }
}

void Progress::message(const std::string& line) {
  if (line_open_) out_ << "\r\033[K";
  out_ << line << "\n" << std::flush;
  line_open_ = false;  // the next update redraws the progress line
}

void Progress::finish() {
  if (line_open_) out_ << "\n" << std::flush;
  line_open_ = false;
}

}  // namespace aria
