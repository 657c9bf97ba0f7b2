// Data-parallel communication: one process per GPU, launched by `mpirun -np N`.
//
// The world is MPI_COMM_WORLD. Collectives on CPU tensors go through MPI; collectives on
// CUDA tensors go through NCCL (core/dist_nccl.cpp: rank 0 creates the NCCL unique id and
// broadcasts it over MPI; the communicator is created on the first CUDA collective, which
// every rank reaches in the same program order). Host values (flags, confusion matrices,
// hashes) always go through MPI.
//
// Without mpirun (no OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK in the environment) MPI is
// never initialized: world size 1, rank 0, and every CPU collective is the identity, so a
// single process behaves exactly as before. CUDA collectives still run NCCL at world size 1
// (that is how a single GPU checks the NCCL path); the trainer skips them when alone.
//
// Every rank must call the same collectives in the same order with the same shapes. An
// error on one rank must end the job (abort() calls MPI_Abort), never leave the others
// blocked in a collective: MPI_COMM_WORLD keeps MPI_ERRORS_ARE_FATAL, and a rank that dies
// makes mpirun end the others.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace c3::dist {

// Initializes MPI when launched by mpirun (idempotent; also done lazily by every function
// below). Selects GPU (local rank mod GPU count) in CUDA builds. MPI_Finalize runs at exit.
void init();
bool launched_by_mpi();  // true under mpirun (from the environment, before init)
int rank();
int world_size();
int local_rank();  // rank among the processes of this machine
inline bool is_main() { return rank() == 0; }

// In-place collectives on a whole tensor (f32, f64, i32 on the CPU; f32, i32 on CUDA).
void all_reduce_sum(Tensor& t);
void all_reduce_avg(Tensor& t);  // sum / world size (float dtypes)
// Every rank's tensor (same shape everywhere) concatenated along dim 0: [N*d0, ...].
Tensor all_gather(const Tensor& t);
void broadcast(Tensor& t, int root = 0);
// Broadcasts many tensors in place: one collective per run of neighbours in one storage (a
// packed module's parameters or buffers are one run: nn::Module::pack_parameters), one per
// other tensor. Identity at world size 1.
void broadcast_packed(const std::vector<Tensor>& ts, int root = 0);
// The tensors as 1-D views of runs of neighbours: tensors of one storage (taken in order of
// first appearance, then by offset) that touch, or lie apart by less than the storage's
// arena alignment (zeros of padding), form one view; the others stay one view each.
std::vector<Tensor> contiguous_runs(const std::vector<Tensor>& ts);
void barrier();

// Host values, always through MPI (identity at world size 1).
void all_reduce_sum(std::vector<double>& v);
void all_reduce_sum(std::vector<uint64_t>& v);
void all_reduce_sum(std::vector<int32_t>& v);
bool any(bool flag);                           // true when any rank's flag is true
std::string broadcast_string(const std::string& s, int root = 0);
std::vector<uint64_t> all_gather(uint64_t v);  // one value per rank

// Differentiable all-reduce sum: forward sums over ranks, backward sums the gradients over
// ranks (SyncBN's statistics). Every rank must run the backward in the same order.
Tensor all_reduce_sum_grad(const Tensor& t);

// Data-parallel gradient step: the gradients of `params` averaged over ranks in place, in
// their gradient slots (a packed module's gradient arena: one run, cut into buckets of at most
// `bucket_bytes`, one collective each; a parameter without a slot is given one). A parameter
// with a gradient on some rank but not on this one gets zeros first, so every rank updates
// the same parameters. Call after backward.
void average_gradients(const std::vector<Tensor>& params, size_t bucket_bytes = 25u << 20);

// 64-bit FNV-1a over the bytes of the tensors' contiguous runs (copied to the host, one
// copy per run; the same tensors in the same layout hash the same on every rank).
uint64_t hash_tensors(const std::vector<Tensor>& tensors);
// Throws c3::Error naming `what` and the ranks whose hash differs from rank 0's.
void check_same_on_all_ranks(uint64_t hash, const std::string& what);

// Ends every rank: prints "rank R: msg" on stderr and calls MPI_Abort (std::exit alone
// when MPI is not running).
[[noreturn]] void abort(const std::string& msg, int code = 1);

// Within this scope the process acts alone (rank 0 of 1, collectives are the identity):
// the tests compute a single-process reference inside an mpirun job with it.
class LocalScope {
 public:
  LocalScope();
  ~LocalScope();
  LocalScope(const LocalScope&) = delete;
  LocalScope& operator=(const LocalScope&) = delete;

 private:
  bool prev_;
};

// Failure injection for tools/test_dist.sh (average_gradients calls it, once per step): when
// C3_DEBUG_KILL_RANK equals this rank, at call number C3_DEBUG_KILL_AT (default 1) the
// process kills itself with SIGKILL, or with C3_DEBUG_KILL_MODE=throw throws c3::Error, or
// with C3_DEBUG_KILL_MODE=hang sleeps forever (the others' watchdog must end the job).
void debug_maybe_die();

namespace detail {
// While alive, marks this rank as waiting in the collective `what`. A watchdog thread (started
// under mpirun) ends the process with a message naming it when one collective waits longer
// than C3_DIST_TIMEOUT seconds (default 1800): a rank that hangs without dying (stuck I/O, a
// deadlock) then ends the job too, since mpirun ends the others when one exits with an error.
class Watch {
 public:
  explicit Watch(const char* what);
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
};
// NCCL backend (core/dist_nccl.cpp; throws in builds without CUDA).
void nccl_all_reduce(Tensor& t, bool avg);
void nccl_all_gather(const Tensor& in, Tensor& out);
void nccl_broadcast(Tensor& t, int root);
void select_gpu(int local_rank);
}  // namespace detail

// A communicator: the processes a computation spans and the collectives among them. The
// code below the trainer (the C3 step, DCRS, SyncBN, the loaders' shards, evaluation) takes
// one as an argument instead of asking the process-wide world, so what talks to the other
// ranks shows at each call. Comm::world() is every process of the job (mpirun -np N; one
// process without mpirun); Comm::self() is this process alone: rank 0 of 1, collectives
// that return their input.
class Comm {
 public:
  static Comm world() { return Comm(true); }
  static Comm self() { return Comm(false); }
  Comm() = default;  // self
  int rank() const { return world_ ? dist::rank() : 0; }
  int size() const { return world_ ? world_size() : 1; }
  bool is_main() const { return rank() == 0; }
  // As the free functions above, over this communicator's processes.
  void all_reduce_sum(Tensor& t) const {
    if (size() > 1) dist::all_reduce_sum(t);
  }
  template <class T>
  void all_reduce_sum(std::vector<T>& v) const {
    if (size() > 1) dist::all_reduce_sum(v);
  }
  Tensor all_reduce_sum_grad(const Tensor& t) const { return size() > 1 ? dist::all_reduce_sum_grad(t) : t; }
  void broadcast_packed(const std::vector<Tensor>& ts, int root = 0) const {
    if (size() > 1) dist::broadcast_packed(ts, root);
  }
  void average_gradients(const std::vector<Tensor>& params) const {
    if (size() > 1) dist::average_gradients(params);
  }
  void barrier() const {
    if (size() > 1) dist::barrier();
  }
  bool any(bool flag) const { return size() > 1 ? dist::any(flag) : flag; }
  // Throws naming `what` and the ranks whose tensors differ from rank 0's.
  void check_same(const std::vector<Tensor>& ts, const std::string& what) const {
    if (size() > 1) dist::check_same_on_all_ranks(dist::hash_tensors(ts), what);
  }

 private:
  explicit Comm(bool world) : world_(world) {}
  bool world_ = false;
};

}  // namespace c3::dist
