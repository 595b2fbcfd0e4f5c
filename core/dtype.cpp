#include "aria/core/dtype.h"

#include <cmath>

namespace aria {

uint16_t float_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  uint32_t absbits = bits & 0x7fffffffu;
  if (absbits >= 0x7f800000u) return sign | 0x7c00u | (absbits > 0x7f800000u ? 0x200u : 0u);  // inf / nan
  if (absbits >= 0x477ff000u) return sign | 0x7c00u;  // overflow after rounding -> inf
  if (absbits < 0x38800000u) {                          // subnormal or zero in half
    float a;
    std::memcpy(&a, &absbits, 4);
    // scale so that the half subnormal unit (2^-24) becomes 1, then round to nearest even
    float scaled = a * 16777216.0f;
    uint32_t m = uint32_t(std::nearbyint(scaled));
    return sign | uint16_t(m);
  }
  uint32_t exp = ((absbits >> 23) - 127 + 15);
  uint32_t mant = absbits & 0x7fffffu;
  uint32_t half = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return sign | uint16_t(half);
}

}  // namespace aria
