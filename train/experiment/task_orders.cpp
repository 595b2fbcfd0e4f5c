#include "aria/train/experiment/task_orders.h"

#include <algorithm>
#include <numeric>

#include "aria/core/error.h"

namespace aria {

std::vector<std::vector<int>> task_orders(int T, int n, uint64_t seed) {
  ARIA_CHECK(T >= 1 && n >= 1, "task orders: need at least one task and one order, got ", T, " tasks, ", n, " orders");
  std::vector<std::vector<int>> out;
  std::vector<int> identity(static_cast<size_t>(T), 0);
  std::iota(identity.begin(), identity.end(), 0);
  out.push_back(identity);
  uint64_t distinct = 1;  // T!, saturated: how many different orders exist
  for (int k = 2; k <= T && distinct < uint64_t(n); ++k) distinct *= uint64_t(k);
  uint64_t state = seed ^ 0x0BDE55EEDull;
  auto next = [&state]() {  // splitmix64
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  while (int(out.size()) < n) {
    std::vector<int> p = identity;
    for (int i = T - 1; i > 0; --i)  // Fisher-Yates
      std::swap(p[size_t(i)], p[size_t(next() % uint64_t(i + 1))]);
    // A repeat is drawn again while unused orders remain (with T! < n some orders must repeat).
    if (out.size() < distinct && std::find(out.begin(), out.end(), p) != out.end()) continue;
    out.push_back(p);
  }
  return out;
}

std::string order_text(const std::vector<int>& order, const std::vector<std::string>& names) {
  std::string s;
  for (int i : order) s += (s.empty() ? "" : " > ") + names.at(size_t(i));
  return s;
}

}  // namespace aria
