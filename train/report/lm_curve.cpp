#include "aria/train/report/lm_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "aria/core/error.h"

namespace aria {

namespace {

using ojson = nlohmann::ordered_json;

std::string num(double v, const char* f = "%.1f") {
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// Tick values covering [lo, hi] at a step of 1, 2 or 5 times a power of ten (about `n` of them).
std::vector<double> ticks(double lo, double hi, int n) {
  const double raw = (hi - lo) / std::max(n, 1);
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) t.push_back(v);
  return t;
}

std::vector<double> doubles(const ojson& a, const char* what) {
  ARIA_CHECK(a.is_array(), "learning curve: '", what, "' is not an array");
  std::vector<double> v;
  for (const ojson& x : a) v.push_back(x.is_number() ? x.get<double>() : std::nan(""));
  return v;
}

}  // namespace

ojson lm_curve_json(const LmTrainResult& r, const std::string& title) {
  ojson train = {{"step", ojson::array()}, {"tokens", ojson::array()}, {"loss", ojson::array()}, {"lr", ojson::array()}};
  for (size_t i = 0; i < r.losses.size(); ++i) {
    train["step"].push_back(i + 1);
    train["tokens"].push_back(int64_t(i + 1) * r.tokens_per_step);
    train["loss"].push_back(r.losses[i]);
    train["lr"].push_back(i < r.lrs.size() ? r.lrs[i] : 0.0);
  }
  ojson val = {{"step", ojson::array()}, {"tokens", ojson::array()}, {"loss", ojson::array()}};
  for (const auto& [step, loss] : r.val_losses) {
    val["step"].push_back(step);
    val["tokens"].push_back(int64_t(step) * r.tokens_per_step);
    val["loss"].push_back(loss);
  }
  return {{"title", title},
          {"tokens_per_step", r.tokens_per_step},
          {"train", train},
          {"validation", val},
          {"final_train_loss", r.losses.empty() ? ojson(nullptr) : ojson(r.losses.back())},
          {"final_val_loss", std::isfinite(r.final_val_loss) ? ojson(r.final_val_loss) : ojson(nullptr)}};
}

std::string lm_curve_svg(const ojson& curve) {
  const std::vector<double> tx = doubles(curve.at("train").at("tokens"), "train.tokens");
  const std::vector<double> ty = doubles(curve.at("train").at("loss"), "train.loss");
  const std::vector<double> vx = doubles(curve.at("validation").at("tokens"), "validation.tokens");
  const std::vector<double> vy = doubles(curve.at("validation").at("loss"), "validation.loss");
  ARIA_CHECK(!tx.empty() && tx.size() == ty.size() && vx.size() == vy.size(),
             "learning curve: needs training points, and as many tokens as losses");
  // Moving average of the training loss over 1 % of the steps (at least 1): the trend under the noise.
  const size_t w = std::max<size_t>(1, ty.size() / 100);
  std::vector<double> smooth(ty.size());
  double acc = 0;
  for (size_t i = 0; i < ty.size(); ++i) {
    acc += ty[i];
    if (i >= w) acc -= ty[i - w];
    smooth[i] = acc / double(std::min(i + 1, w));
  }
  double x_hi = tx.back(), y_lo = 1e300, y_hi = -1e300;
  for (const auto* v : {&ty, &vy})
    for (double y : *v)
      if (std::isfinite(y)) y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
  if (!vx.empty()) x_hi = std::max(x_hi, vx.back());
  ARIA_CHECK(y_lo <= y_hi, "learning curve: no finite loss to draw");
  if (y_hi - y_lo < 1e-6) y_lo -= 0.5, y_hi += 0.5;
  const double pad = 0.04 * (y_hi - y_lo);
  y_lo -= pad, y_hi += pad;
  const bool millions = x_hi >= 1e6;
  const double xs = millions ? 1e6 : 1.0;

  const double W = 760, H = 420, L = 64, R = 20, T = 40, B = 52;
  auto px = [&](double x) { return L + (x / xs) / (x_hi / xs) * (W - L - R); };
  auto py = [&](double y) { return T + (y_hi - y) / (y_hi - y_lo) * (H - T - B); };
  auto polyline = [&](const std::vector<double>& xv, const std::vector<double>& yv, const char* style) {
    std::string pts;
    for (size_t i = 0; i < xv.size(); ++i)
      if (std::isfinite(yv[i])) pts += num(px(xv[i])) + "," + num(py(yv[i])) + " ";
    return "<polyline fill=\"none\" " + std::string(style) + " points=\"" + pts + "\"/>\n";
  };

  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W, "%.0f") + "\" height=\"" +
                  num(H, "%.0f") + "\" viewBox=\"0 0 " + num(W, "%.0f") + " " + num(H, "%.0f") +
                  "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(W / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" +
       escape(curve.value("title", std::string("learning curve"))) + "</text>\n";
  for (double v : ticks(0, x_hi / xs, 8)) {
    const std::string x = num(px(v * xs));
    s += "<line x1=\"" + x + "\" y1=\"" + num(T) + "\" x2=\"" + x + "\" y2=\"" + num(H - B) + "\" stroke=\"#eee\"/>\n";
    s += "<text x=\"" + x + "\" y=\"" + num(H - B + 16) + "\" text-anchor=\"middle\">" + num(v, "%g") + "</text>\n";
  }
  for (double v : ticks(y_lo, y_hi, 6)) {
    const std::string y = num(py(v));
    s += "<line x1=\"" + num(L) + "\" y1=\"" + y + "\" x2=\"" + num(W - R) + "\" y2=\"" + y + "\" stroke=\"#eee\"/>\n";
    s += "<text x=\"" + num(L - 6) + "\" y=\"" + num(py(v) + 4) + "\" text-anchor=\"end\">" + num(v, "%g") + "</text>\n";
  }
  s += "<rect x=\"" + num(L) + "\" y=\"" + num(T) + "\" width=\"" + num(W - L - R) + "\" height=\"" + num(H - T - B) +
       "\" fill=\"none\" stroke=\"#888\"/>\n";
  s += "<text x=\"" + num((L + W - R) / 2) + "\" y=\"" + num(H - 12) + "\" text-anchor=\"middle\">training tokens" +
       (millions ? " (millions)" : "") + "</text>\n";
  s += "<text transform=\"translate(16," + num((T + H - B) / 2) + ") rotate(-90)\" text-anchor=\"middle\">loss (nats/token)</text>\n";
  s += polyline(tx, ty, "stroke=\"#9ecae1\" stroke-width=\"0.8\"");
  s += polyline(tx, smooth, "stroke=\"#1f77b4\" stroke-width=\"1.8\"");
  if (!vx.empty()) {
    s += polyline(vx, vy, "stroke=\"#ff7f0e\" stroke-width=\"1.8\"");
    for (size_t i = 0; i < vx.size(); ++i)
      if (std::isfinite(vy[i]))
        s += "<circle cx=\"" + num(px(vx[i])) + "\" cy=\"" + num(py(vy[i])) + "\" r=\"3\" fill=\"#ff7f0e\"><title>" +
             num(vx[i], "%.0f") + " tokens: validation loss " + num(vy[i], "%.4f") + "</title></circle>\n";
  }
  // Legend, top right.
  const double lx = W - R - 210, ly = T + 14;
  s += "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly) + "\" x2=\"" + num(lx + 24) + "\" y2=\"" + num(ly) +
       "\" stroke=\"#1f77b4\" stroke-width=\"1.8\"/><text x=\"" + num(lx + 30) + "\" y=\"" + num(ly + 4) +
       "\">train (moving average, " + std::to_string(w) + " steps)</text>\n";
  if (!vx.empty())
    s += "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly + 18) + "\" x2=\"" + num(lx + 24) + "\" y2=\"" + num(ly + 18) +
         "\" stroke=\"#ff7f0e\" stroke-width=\"1.8\"/><text x=\"" + num(lx + 30) + "\" y=\"" + num(ly + 22) +
         "\">validation</text>\n";
  s += "</svg>\n";
  return s;
}

}  // namespace aria
