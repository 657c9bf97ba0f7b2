// Inputs for one C3 step in tests: standard-normal images (labeled, weak and strong views,
// drawn in that order from `gen`) and labels in short runs over the classes 0..C-1.
#pragma once
#include <vector>

#include "core/rng.h"
#include "semiseg/c3_step.h"

namespace c3test {

inline c3::semiseg::StepInputs random_step_inputs(c3::Generator& gen, int64_t Bl, int64_t Bu, int64_t H, int64_t W,
                                                  int C) {
  c3::semiseg::StepInputs in;
  in.x_l = gen.normal({Bl, H, W, 3}, 0, 1);
  in.u_w = gen.normal({Bu, H, W, 3}, 0, 1);
  in.u_s = gen.normal({Bu, H, W, 3}, 0, 1);
  std::vector<uint8_t> yv(size_t(Bl * H * W));
  for (size_t i = 0; i < yv.size(); ++i) yv[i] = uint8_t((i / 7 + i / 97) % size_t(C));
  in.y_l = c3::Tensor::from_vector(yv, {Bl, H, W});
  return in;
}

}  // namespace c3test
