// A program that includes its own core/ and model/ headers next to aria's: the include prefix aria/
// keeps them apart (issue 16). Prints which headers it used and aria's version.
#include "core/tensor.h"
#include "model/gpt2.h"

#include <aria/aria.h>

#include <cstdio>
#include <cstring>

int main() {
  aria::Tensor t = aria::Tensor::full({2, 3}, 1.5);
  const double s = aria::ops::sum(t).item();
  std::printf("%s, %s, aria %s (%d.%d.%d), sum %.1f\n", app::core_tensor_h(), app::model_gpt2_h(), ARIA_VERSION_STRING,
              ARIA_VERSION_MAJOR, ARIA_VERSION_MINOR, ARIA_VERSION_PATCH, s);
  return std::strcmp(aria::kVersion, ARIA_EXPECTED_VERSION) == 0 && s == 9.0 ? 0 : 1;
}
