// A world of one process in place of MPI, for builds without it (make MPI=0): the subset of
// the MPI C API that core/dist.cpp calls, with the semantics MPI gives them when the world
// holds one rank. Under mpirun such a build stops with a message (dist::init), so the only
// world it meets is its own.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>

using MPI_Comm = int;
using MPI_Datatype = int;  // the element size in bytes
using MPI_Op = int;
using MPI_Info = int;
constexpr MPI_Comm MPI_COMM_WORLD = 0;
constexpr MPI_Info MPI_INFO_NULL = 0;
constexpr int MPI_COMM_TYPE_SHARED = 0, MPI_THREAD_FUNNELED = 1, MPI_SUM = 0, MPI_MAX = 1;
constexpr MPI_Datatype MPI_FLOAT = 4, MPI_DOUBLE = 8, MPI_INT = 4, MPI_UNSIGNED_CHAR = 1, MPI_CHAR = 1,
                       MPI_UINT64_T = 8;
inline void* const MPI_IN_PLACE = reinterpret_cast<void*>(1);

inline int MPI_Initialized(int* flag) { return *flag = 0, 0; }
inline int MPI_Finalized(int* flag) { return *flag = 1, 0; }
inline int MPI_Finalize() { return 0; }
inline int MPI_Init_thread(int*, char***, int, int*) {
  std::fprintf(stderr, "this c3semiseg was built with MPI=0: it cannot run under mpirun (rebuild with MPI=1)\n");
  std::exit(2);
}
inline int MPI_Comm_rank(MPI_Comm, int* r) { return *r = 0, 0; }
inline int MPI_Comm_size(MPI_Comm, int* n) { return *n = 1, 0; }
inline int MPI_Comm_split_type(MPI_Comm, int, int, MPI_Info, MPI_Comm* out) { return *out = 0, 0; }
inline int MPI_Comm_free(MPI_Comm*) { return 0; }
inline int MPI_Barrier(MPI_Comm) { return 0; }
inline int MPI_Bcast(void*, int, MPI_Datatype, int, MPI_Comm) { return 0; }
inline int MPI_Allreduce(const void* in, void* out, int n, MPI_Datatype t, MPI_Op, MPI_Comm) {
  if (in != MPI_IN_PLACE) std::memcpy(out, in, size_t(n) * size_t(t));
  return 0;
}
inline int MPI_Allgather(const void* in, int n, MPI_Datatype t, void* out, int, MPI_Datatype, MPI_Comm) {
  std::memcpy(out, in, size_t(n) * size_t(t));
  return 0;
}
inline int MPI_Abort(MPI_Comm, int code) { std::exit(code); }
