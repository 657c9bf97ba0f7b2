// The NCCL backend of core/dist.h, for CUDA tensors. The one file of core/ that includes
// CUDA headers (nccl.h needs cudaStream_t): it is compiled only with C3_HAVE_CUDA.
//
// The communicator is created on the first CUDA collective: rank 0 makes the unique id and
// broadcasts it over MPI (dist::broadcast_string), then every rank joins with
// ncclCommInitRank. Collectives run on a dedicated stream: the device is synchronized
// before (the engine's kernels run on the default stream) and the stream after, so a
// collective is ordered with the kernels around it, and its result is ready on return.
#include "core/dist.h"

#ifdef C3_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace c3::dist::detail {
namespace {

void check_nccl(ncclResult_t r, const char* what) {
  C3_CHECK(r == ncclSuccess, "NCCL ", what, " failed on rank ", rank(), " of ", world_size(), ": ",
           ncclGetErrorString(r));
}
void check_cuda(cudaError_t e, const char* what) {
  C3_CHECK(e == cudaSuccess, "dist (NCCL): ", what, " failed on rank ", rank(), ": ", cudaGetErrorString(e));
}

struct Nccl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int ranks = 0;
};

Nccl& comm() {
  static Nccl n;
  if (n.comm) {
    C3_CHECK(n.ranks == world_size(), "dist (NCCL): the communicator has ", n.ranks, " ranks, the world ",
             world_size());
    return n;
  }
  ncclUniqueId id{};
  if (rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  std::string bytes = broadcast_string(std::string(reinterpret_cast<const char*>(&id), sizeof id), 0);
  std::memcpy(&id, bytes.data(), sizeof id);
  check_cuda(cudaStreamCreateWithFlags(&n.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check_nccl(ncclCommInitRank(&n.comm, world_size(), id, rank()), "ncclCommInitRank");
  n.ranks = world_size();
  return n;
}

ncclDataType_t nccl_type(DType t, const char* op) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    case DType::u8: return ncclUint8;
    case DType::bf16: break;  // not supported yet (ncclBfloat16 would be)
  }
  throw Error(std::string("dist::") + op + ": unsupported dtype " + dtype_name(t));
}

// Runs one collective on the NCCL stream, ordered after the device's pending work.
template <class F> void run(const char* what, F&& f) {
  Nccl& n = comm();
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize before a collective");
  Watch w(what);  // a peer that never joins would leave the stream waiting forever
  check_nccl(f(n), what);
  check_cuda(cudaStreamSynchronize(n.stream), what);
}

}  // namespace

void nccl_all_reduce(Tensor& t, bool avg) {
  run("ncclAllReduce", [&](Nccl& n) {
    return ncclAllReduce(t.raw(), t.raw(), size_t(t.numel()), nccl_type(t.dtype(), "all_reduce"),
                         avg ? ncclAvg : ncclSum, n.comm, n.stream);
  });
}

void nccl_all_gather(const Tensor& in, Tensor& out) {
  run("ncclAllGather", [&](Nccl& n) {
    return ncclAllGather(in.raw(), out.raw(), size_t(in.numel()), nccl_type(in.dtype(), "all_gather"), n.comm,
                         n.stream);
  });
}

void nccl_broadcast(Tensor& t, int root) {
  run("ncclBroadcast", [&](Nccl& n) {
    return ncclBroadcast(t.raw(), t.raw(), size_t(t.numel()), nccl_type(t.dtype(), "broadcast"), root, n.comm,
                         n.stream);
  });
}

void select_gpu(int local_rank) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    (void)cudaGetLastError();  // no GPU here: the CPU path needs none
    return;
  }
  check_cuda(cudaSetDevice(local_rank % n), "cudaSetDevice");
}

}  // namespace c3::dist::detail

#else  // CPU-only build: CUDA tensors do not exist, so these are never reached.

namespace c3::dist::detail {
void nccl_all_reduce(Tensor&, bool) { throw Error("dist: NCCL collectives need a build with CUDA"); }
void nccl_all_gather(const Tensor&, Tensor&) { throw Error("dist: NCCL collectives need a build with CUDA"); }
void nccl_broadcast(Tensor&, int) { throw Error("dist: NCCL collectives need a build with CUDA"); }
void select_gpu(int) {}
}  // namespace c3::dist::detail

#endif
