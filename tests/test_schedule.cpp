// Learning-rate schedule at its boundaries, gradient clipping (norm, scale, non-finite), progress.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "aria/core/error.h"
#include "aria/train/optim/grad_clip.h"
#include "aria/train/report/progress.h"
#include "aria/train/optim/schedule.h"

using namespace aria;

TEST_CASE("schedule: linear warmup then cosine to min_lr_ratio") {
  ScheduleConfig c;
  c.warmup_steps = 10;
  c.total_steps = 110;
  c.min_lr_ratio = 0.1;
  CHECK(lr_multiplier(c, 0) == doctest::Approx(0.1));  // (0 + 1) / 10
  CHECK(lr_multiplier(c, 4) == doctest::Approx(0.5));
  CHECK(lr_multiplier(c, 9) == doctest::Approx(1.0));  // warmup ends at the peak
  CHECK(lr_multiplier(c, 10) == doctest::Approx(1.0));  // cosine starts at the peak
  CHECK(lr_multiplier(c, 60) == doctest::Approx(0.55));  // halfway: (1 + min) / 2
  CHECK(lr_multiplier(c, 35) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25))));
  CHECK(lr_multiplier(c, 109) > 0.1);
  CHECK(lr_multiplier(c, 109) < 0.1003);  // 0.1 + 0.45 * (1 + cos(0.99 pi))
  CHECK(lr_multiplier(c, 110) == doctest::Approx(0.1));
  CHECK(lr_multiplier(c, 1000) == doctest::Approx(0.1));
  for (int64_t s = 11; s < 120; ++s) CHECK(lr_multiplier(c, s) <= lr_multiplier(c, s - 1) + 1e-15);
}

TEST_CASE("schedule: no warmup, constant, degenerate totals, errors") {
  ScheduleConfig c;
  c.total_steps = 100;
  CHECK(lr_multiplier(c, 0) == doctest::Approx(1.0));
  CHECK(lr_multiplier(c, 50) == doctest::Approx(0.5));
  CHECK(lr_multiplier(c, 100) == doctest::Approx(0.0));
  c.kind = ScheduleConfig::Kind::Constant;
  c.warmup_steps = 4;
  CHECK(lr_multiplier(c, 0) == doctest::Approx(0.25));
  CHECK(lr_multiplier(c, 3) == doctest::Approx(1.0));
  CHECK(lr_multiplier(c, 99) == doctest::Approx(1.0));
  CHECK(lr_multiplier(c, 5000) == doctest::Approx(1.0));
  ScheduleConfig w;  // warmup longer than the run: still a ramp, never above 1
  w.warmup_steps = 10;
  w.total_steps = 5;
  CHECK(lr_multiplier(w, 4) == doctest::Approx(0.5));
  CHECK(lr_multiplier(w, 20) == doctest::Approx(0.0));
  CHECK(parse_schedule_kind("cosine") == ScheduleConfig::Kind::Cosine);
  CHECK(parse_schedule_kind("constant") == ScheduleConfig::Kind::Constant);
  CHECK_THROWS_WITH_AS(parse_schedule_kind("linear"), doctest::Contains("unknown lr schedule 'linear'"), aria::Error);
  CHECK_THROWS_WITH_AS(lr_multiplier(c, -1), doctest::Contains("negative step"), aria::Error);
  ScheduleConfig bad;
  bad.min_lr_ratio = 1.5;
  CHECK_THROWS_WITH_AS(lr_multiplier(bad, 0), doctest::Contains("min_lr_ratio"), aria::Error);
  bad = ScheduleConfig{};
  bad.total_steps = 0;
  CHECK_THROWS_WITH_AS(lr_multiplier(bad, 0), doctest::Contains("total_steps"), aria::Error);
}

TEST_CASE("clip: scale") {
  CHECK(clip_scale(0.5, 1.0) == 1.0);
  CHECK(clip_scale(1.0, 1.0) == 1.0);
  CHECK(clip_scale(4.0, 1.0) == doctest::Approx(0.25));
  CHECK(clip_scale(4.0, 0.0) == 1.0);   // clipping off
  CHECK(clip_scale(4.0, -1.0) == 1.0);
  CHECK(clip_scale(0.0, 1.0) == 1.0);
}

TEST_CASE("clip: global gradient norm over several tensors and dtypes") {
  Tensor a = Tensor::zeros({2, 2}), b = Tensor::zeros({3}, DType::F64), c = Tensor::zeros({5});
  a.set_grad(Tensor::from_floats({1, 2, 3, 4}, {2, 2}));
  b.set_grad(Tensor::from_vector({0.5, -0.5, 2.0}, {3}, DType::F64));
  // c has no grad: skipped
  const double want = std::sqrt(1 + 4 + 9 + 16 + 0.25 + 0.25 + 4.0);
  CHECK(global_grad_norm({a, b, c}) == doctest::Approx(want).epsilon(1e-7));
  CHECK(global_grad_norm({{"a", a}, {"b", b}, {"c", c}}) == doctest::Approx(want).epsilon(1e-7));
  CHECK(global_grad_norm({c}) == 0.0);
  CHECK(global_grad_norm(std::vector<Tensor>{}) == 0.0);

  b.set_grad(Tensor::from_vector({0.5, std::numeric_limits<double>::quiet_NaN(), 2.0}, {3}, DType::F64));
  CHECK_THROWS_WITH_AS(global_grad_norm({a, b}), doctest::Contains("non-finite gradient norm"), aria::Error);
  CHECK_THROWS_WITH_AS(global_grad_norm({{"a", a}, {"h.0.b", b}}),
                       doctest::Contains("non-finite gradient norm (nan); NaN/inf in the gradients of 1 tensors: h.0.b"),
                       aria::Error);
  a.set_grad(Tensor::from_floats({1, std::numeric_limits<float>::infinity(), 3, 4}, {2, 2}));
  CHECK_THROWS_WITH_AS(global_grad_norm({{"a", a}, {"b", b}}), doctest::Contains("2 tensors: a, b"), aria::Error);
}

TEST_CASE("progress: plain lines when not a terminal, one redrawn line on a terminal") {
  CHECK(format_duration(5) == "5s");
  CHECK(format_duration(187) == "3m07s");
  CHECK(format_duration(7500) == "2h05m");
  CHECK(format_duration(-1) == "?");

  std::ostringstream os;
  CHECK(!is_terminal(os));
  Progress p(os, 25, "step", 10);
  for (int i = 1; i <= 25; ++i) p.update(i, "loss " + std::to_string(i));
  p.message("val loss 1.0");
  p.finish();
  const std::string s = os.str();
  CHECK(s.find("step 1/25 | loss 1 |") != std::string::npos);
  CHECK(s.find("step 10/25 | loss 10 |") != std::string::npos);
  CHECK(s.find("step 20/25 | loss 20 |") != std::string::npos);
  CHECK(s.find("step 25/25 | loss 25 |") != std::string::npos);
  CHECK(s.find("step 5/25") == std::string::npos);
  CHECK(s.find("ETA") != std::string::npos);
  CHECK(s.find('\r') == std::string::npos);
  CHECK(s.find("val loss 1.0\n") != std::string::npos);

  std::ostringstream tty;
  Progress t(tty, 3, "eval", 10, /*terminal=*/true);
  t.update(1, "a");
  t.message("note");
  t.update(3, "c");
  t.finish();
  const std::string u = tty.str();
  CHECK(u.rfind("\reval 1/3 | a", 0) == 0);
  CHECK(u.find("\r\033[Knote\n") != std::string::npos);
  CHECK(u.find("\reval 3/3 | c") != std::string::npos);
  CHECK(u.back() == '\n');
}
