#include "kernels/cpu/pipeline.h"

namespace gleam::cpu {

Executor serial_executor() {
  Executor e;
  e.threads = 1;
  e.pfor = [](int64_t b, int64_t en, int64_t, const std::function<void(int64_t, int64_t)>& f) {
    if (b < en) f(b, en);
  };
  return e;
}

}  // namespace gleam::cpu
