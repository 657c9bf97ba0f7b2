// Which cuDNN convolution algorithm runs, and what happens when it fails: the logic of
// kernels/cuda/conv_cudnn.cu in plain C++ (no cuDNN), so the CPU tests drive it with
// injected failures (tests/test_conv_algo.cpp).
//
// For each problem cuDNN ranks its algorithms (by heuristics, or by timing them when
// `cudnn_benchmark` is on). The usable ones, in rank order, are kept with the index of the one
// that ran last. A call runs that one; if it fails at run time (cuDNN returns an error, or its
// workspace cannot be allocated) the next candidates are tried in order, and the first that
// runs becomes the problem's choice for later calls. When none runs, the error names every
// algorithm tried and why it failed. (A fault that poisons the CUDA context, such as an illegal
// address, makes every later candidate fail too: the error then lists them all.)
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace kernels {

struct ConvCandidate {
  int algo = 0;          // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  int math = 0;          // cudnnMathType_t to set on the descriptor before running
  size_t workspace = 0;  // bytes of scratch the algorithm needs with that math type
};

// One entry of cuDNN's ranking (cudnnConvolution*AlgoPerf_t, from the heuristics or a timed
// search), before filtering.
struct ConvRanked {
  int algo = 0;
  bool ok = true;        // status == CUDNN_STATUS_SUCCESS
  int math = 0;
  size_t workspace = 0;  // bytes with `math` set
  bool deterministic = true;  // determinism == CUDNN_DETERMINISTIC (no atomics in its sums)
};

// The usable candidates in rank order: ok, not a math type the caller forbids
// (`forbidden_math`, e.g. ALLOW_CONVERSION to FP16 for f32 data; -1: none; `tf32_math` only
// when `allow_tf32`), workspace within `workspace_limit`. Without TF32 the math type run is
// `fma_math`. With `deterministic_only`, only algorithms whose result does not vary from run
// to run. Each algorithm appears once (a timed search may list one several times).
inline std::vector<ConvCandidate> usable_candidates(const std::vector<ConvRanked>& ranked, bool allow_tf32,
                                                    int tf32_math, int fma_math, int forbidden_math,
                                                    size_t workspace_limit, bool deterministic_only = false) {
  std::vector<ConvCandidate> out;
  for (const ConvRanked& r : ranked) {
    if (!r.ok || r.math == forbidden_math || (!allow_tf32 && r.math == tf32_math)) continue;
    if (deterministic_only && !r.deterministic) continue;
    if (r.workspace > workspace_limit) continue;
    bool seen = false;
    for (const ConvCandidate& c : out) seen = seen || c.algo == r.algo;
    if (seen) continue;
    out.push_back({r.algo, allow_tf32 ? r.math : fma_math, r.workspace});
  }
  return out;
}

// The candidates of one problem and the index of the one to run first.
struct ConvChoice {
  std::vector<ConvCandidate> candidates;
  size_t current = 0;
};

// Runs the current candidate, then (on failure) the following ones, wrapping around once.
// `run(c)` returns an empty string on success, else why it failed. On success `choice.current`
// is the candidate that ran; returns it. Throws std::runtime_error naming `what`, each
// algorithm tried and its failure when none runs.
template <class Run>
const ConvCandidate& run_with_fallback(ConvChoice& choice, const std::string& what, Run&& run) {
  const size_t n = choice.candidates.size();
  if (n == 0) throw std::runtime_error(what + ": no cuDNN algorithm is usable for this problem");
  std::string failures;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (choice.current + k) % n;
    const std::string err = run(choice.candidates[i]);
    if (err.empty()) {
      choice.current = i;
      return choice.candidates[i];
    }
    failures += "\n  algorithm " + std::to_string(choice.candidates[i].algo) + " (workspace " +
                std::to_string(choice.candidates[i].workspace) + " bytes): " + err;
  }
  throw std::runtime_error(what + ": every cuDNN algorithm failed:" + failures);
}

}  // namespace kernels
