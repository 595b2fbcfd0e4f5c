#include "aria/core/tensor_view.h"

#include <sstream>

namespace aria {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int i = int(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

int64_t TensorView::size(int d) const {
  const int n = dim();
  const int i = d < 0 ? d + n : d;
  ARIA_CHECK(i >= 0 && i < n, "dimension ", d, " out of range for ", str());
  return shape()[i];
}

int64_t TensorView::stride(int d) const {
  const int n = dim();
  const int i = d < 0 ? d + n : d;
  ARIA_CHECK(i >= 0 && i < n, "dimension ", d, " out of range for ", str());
  return strides()[i];
}

bool TensorView::is_contiguous() const {
  const auto& s = shape();
  const auto& st = strides();
  int64_t acc = 1;
  for (int i = int(s.size()) - 1; i >= 0; --i) {
    if (s[i] != 1 && st[i] != acc) return false;
    acc *= s[i];
  }
  return true;
}

std::string TensorView::str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device().str();
}

void check_same_shape(const TensorView& a, const TensorView& b, const char* what) {
  ARIA_CHECK(a.shape() == b.shape(), what, ": shapes differ: ", a.str(), " vs ", b.str());
}

void check_same_device(const TensorView& a, const TensorView& b, const char* what) {
  ARIA_CHECK(a.device() == b.device(), what, ": tensors on different devices: ", a.str(), " vs ", b.str());
}

}  // namespace aria
