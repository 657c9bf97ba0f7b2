// Layers as modules, over the ops of core/. Parameter names follow torch.nn.
#pragma once
#include <memory>

#include "core/dist.h"
#include "core/ops.h"
#include "core/ops_norm.h"
#include "core/rng.h"
#include "nn/module.h"

namespace c3::nn {

// torch.nn.Conv2d (groups = 1). Weight stored [out, kh, kw, in]; saved as PyTorch's layout.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int kernel, int stride = 1, int padding = 0, int dilation = 1, bool bias = true);
  Tensor forward(const Tensor& x) const;
  // Kaiming normal, fan_out, ReLU gain (torchvision's ResNet init); bias zero.
  void init_kaiming(Generator& g);
  void init_normal(Generator& g, double std);  // N(0, std), bias zero (DeepLab classifiers)

  Tensor weight, bias;
  int64_t in_channels, out_channels;
  int kernel, stride, padding, dilation;
};

// torch.nn.BatchNorm2d with three behaviours: train (batch statistics), eval (running
// statistics), frozen (running statistics and a fixed affine; weight and bias get no
// gradient). A frozen layer stays frozen through train()/eval().
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  // relu: BN then ReLU (fused into the BN kernels; after sync_batch_norm, the relu op).
  Tensor forward(const Tensor& x, bool relu = false);
  void set_frozen(bool on);
  bool frozen() const { return frozen_; }
  BatchNormMode mode() const;

  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps, momentum;
  // SyncBN (model.sync_bn): in train mode with several ranks, the batch statistics are those
  // of every rank's batch together (sync_batch_norm). Alone, the plain kernel runs.
  dist::Comm sync;

 private:
  bool frozen_ = false;
};

// A conv, then a BatchNorm, then a ReLU when `relu`: the conv + BN units of the ResNet stem and
// blocks and of the DeepLabV3+ head. When the BatchNorm is frozen and folding is on, the conv
// runs with the BatchNorm folded into its weights and bias (fold_frozen_batch_norm, from the
// current weights at each call, so the conv's weights train as before) and the ReLU fused into
// its epilogue: one pass over the output instead of three (conv, BN, ReLU); parameters, names and
// checkpoints do not change. Otherwise conv.forward, then bn.forward(.., relu).
Tensor conv_bn(const Conv2d& conv, BatchNorm2d& bn, const Tensor& x, bool relu = false);
// Folding of frozen BatchNorms in conv_bn, process-wide (default on); off runs the unfolded
// chain, for comparisons.
void set_fold_frozen_bn(bool on);
bool fold_frozen_bn();

// Train-mode batch normalization over the batches of all ranks (SyncBN): the per-channel
// sum and the sum of squared deviations are all-reduced (Comm::all_reduce_sum_grad), so the
// backward all-reduces the matching gradient sums, and N ranks with batch b compute what one
// process computes with batch N*b. Running statistics follow PyTorch's rule with the total
// count (unbiased variance). A composite of differentiable ops: slower than the fused kernel.
Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                       const Tensor& running_var, double momentum, double eps, const dist::Comm& comm);
// Sets BatchNorm2d::sync on every BatchNorm2d under `root`: the statistics over `comm`'s
// processes (Comm::self(): each its own, the plain kernel).
void set_sync_batch_norm(Module& root, const dist::Comm& comm);

// Zeroes each element with probability p in training mode and scales the rest by 1/(1-p).
class Dropout : public Module {
 public:
  Dropout(double p, std::shared_ptr<Generator> gen) : p_(p), gen_(std::move(gen)) {}
  Tensor forward(const Tensor& x) const;

 private:
  double p_;
  std::shared_ptr<Generator> gen_;
};

}  // namespace c3::nn
