#include "aria/core/context.h"

namespace aria {

Context& context() {
  static Context c;
  return c;
}

}  // namespace aria
