// Fused optimizer updates: one grid-stride pass reads p, g and the state, writes p and state.
//
// Memory-bound, so the accesses are 16 bytes wide (float4) where they can be: each range of
// elements (a whole tensor, an arena span, an EMA span) is cut into a scalar head up to the
// first 16-byte boundary, aligned groups of 4 and a scalar tail (a Piece). The 4-wide path is
// taken only when every buffer of the range has the same address mod 16 (so one boundary suits
// them all); otherwise the whole range is scalar. Each lane runs the same *_math.h update as
// the scalar path, so the results are bit-identical. A grid-stride work item is one scalar
// element or one group of 4.
#include "kernels/cuda/check.h"
#include "kernels/cuda/launch_util.h"
#include "kernels/cuda/optim.h"

namespace kernels::KERNELS_NS {
namespace {
constexpr int kBlock = 256;

// True when every non-null pointer has the address mod 16 of a (a float pointer).
__host__ __device__ inline bool co_aligned(const float* a, const float* b, const float* c = nullptr,
                                           const float* d = nullptr) {
  const uintptr_t r = reinterpret_cast<uintptr_t>(a) % 16;
  return reinterpret_cast<uintptr_t>(b) % 16 == r && (!c || reinterpret_cast<uintptr_t>(c) % 16 == r) &&
         (!d || reinterpret_cast<uintptr_t>(d) % 16 == r);
}

// count elements from `first`: `head` scalars up to a 16-byte boundary, `vec` groups of 4,
// then count - head - 4 vec (< 4) scalars. Not vectorizable: all scalars (head = count).
struct Piece {
  int64_t head, vec, count;
};
__host__ __device__ inline Piece make_piece(const float* first, int64_t count, bool vectorize) {
  int64_t head = count;
  if (vectorize) {
    const int64_t to_boundary = int64_t((16 - reinterpret_cast<uintptr_t>(first) % 16) % 16 / 4);
    head = to_boundary < count ? to_boundary : count;
  }
  return {head, (count - head) / 4, count};
}
__host__ __device__ inline int64_t items(const Piece& p) { return p.count - 3 * p.vec; }
// Work item j < items(p): its first element's offset in the piece, and whether it is 4 wide.
__device__ __forceinline__ bool item_at(const Piece& p, int64_t j, int64_t& e) {
  if (j < p.head) {
    e = j;
    return false;
  }
  j -= p.head;
  e = p.head + 4 * (j < p.vec ? j : p.vec) + (j < p.vec ? 0 : j - p.vec);
  return j < p.vec;
}

// The updates of one work item at element e (one element, or 4 from a 16-byte boundary).
__device__ __forceinline__ void adam_item(float* p, const float* g, float* m, float* v, int64_t e, bool wide,
                                          const AdamParams& a) {
  if (!wide) return adam_update(p[e], g[e], m[e], v[e], a);
  float4 P = ld4(p + e), G = ld4(g + e), M = ld4(m + e), V = ld4(v + e);
#pragma unroll
  for (int k = 0; k < 4; ++k) adam_update(lane(P, k), lane(G, k), lane(M, k), lane(V, k), a);
  st4(p + e, P), st4(m + e, M), st4(v + e, V);
}
__device__ __forceinline__ void sgd_item(float* p, const float* g, float* buf, int64_t e, bool wide,
                                         const SgdParams& s) {
  float dummy = 0.f;
  if (!wide) return sgd_update(p[e], g[e], buf ? buf[e] : dummy, s);
  float4 P = ld4(p + e), G = ld4(g + e), B = buf ? ld4(buf + e) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int k = 0; k < 4; ++k) sgd_update(lane(P, k), lane(G, k), lane(B, k), s);
  st4(p + e, P);
  if (buf) st4(buf + e, B);
}
__device__ __forceinline__ void ema_item(float* t, const float* s, int64_t e, bool wide, float decay) {
  if (!wide) return ema_update(t[e], s[e], decay);
  float4 T = ld4(t + e), S = ld4(s + e);
#pragma unroll
  for (int k = 0; k < 4; ++k) ema_update(lane(T, k), lane(S, k), decay);
  st4(t + e, T);
}

#define C3_THREAD_START (blockIdx.x * (int64_t)blockDim.x + threadIdx.x)
#define C3_THREAD_STRIDE ((int64_t)gridDim.x * blockDim.x)
#define C3_ITEM_LOOP(i, pc) for (int64_t i = C3_THREAD_START; i < items(pc); i += C3_THREAD_STRIDE)

__global__ void adam_kernel(float* p, const float* g, float* m, float* v, Piece pc, AdamParams a) {
  C3_ITEM_LOOP(i, pc) {
    int64_t e;
    const bool wide = item_at(pc, i, e);
    adam_item(p, g, m, v, e, wide, a);
  }
}
__global__ void sgd_kernel(float* p, const float* g, float* buf, Piece pc, SgdParams s) {
  C3_ITEM_LOOP(i, pc) {
    int64_t e;
    const bool wide = item_at(pc, i, e);
    sgd_item(p, g, buf, e, wide, s);
  }
}
__global__ void ema_kernel(float* t, const float* s, Piece pc, float decay) {
  C3_ITEM_LOOP(i, pc) {
    int64_t e;
    const bool wide = item_at(pc, i, e);
    ema_item(t, s, e, wide, decay);
  }
}

// Over an arena: each thread walks its grid-stride work items through the spans in order (the
// span index only moves forward). piece_of(k): span k's Piece; f(k, element offset in span k, wide).
template <class PieceOf, class F>
__device__ __forceinline__ void for_span_items(int64_t total_items, PieceOf&& piece_of, F&& f) {
  int k = 0;
  Piece pc = piece_of(0);
  int64_t base = 0;  // work item index of span k's first item
  for (int64_t i = C3_THREAD_START; i < total_items; i += C3_THREAD_STRIDE) {
    while (i >= base + items(pc)) base += items(pc), pc = piece_of(++k);
    int64_t e;
    const bool wide = item_at(pc, i - base, e);
    f(k, e, wide);
  }
}
// Arena buffers share the layout: span k's Piece is found from p + begin (every buffer has
// p's address mod 16 when vectorize is set).
__host__ __device__ inline Piece arena_piece(const ArenaSpans& s, int k, const float* p, bool vectorize) {
  return make_piece(p + s.span[k].begin, s.span[k].count, vectorize);
}
__host__ __device__ inline Piece ema_piece(const EmaSpans<float>& s, int k) {
  return make_piece(s.teacher[k], s.count[k], co_aligned(s.teacher[k], s.student[k]));
}

__global__ void adam_arena_kernel(float* p, const float* g, float* m, float* v, ArenaSpans s, AdamParams a,
                                  bool vectorize, int64_t total_items) {
  for_span_items(
      total_items, [&](int k) { return arena_piece(s, k, p, vectorize); },
      [&](int k, int64_t e, bool wide) {
        const int64_t o = s.span[k].begin;
        adam_item(p + o, g + o, m + o, v + o, e, wide, span_params(s, s.span[k], a));
      });
}
__global__ void sgd_arena_kernel(float* p, const float* g, float* buf, ArenaSpans s, SgdParams base, bool vectorize,
                                 int64_t total_items) {
  for_span_items(
      total_items, [&](int k) { return arena_piece(s, k, p, vectorize); },
      [&](int k, int64_t e, bool wide) {
        const int64_t o = s.span[k].begin;
        sgd_item(p + o, g + o, buf ? buf + o : nullptr, e, wide, span_params(s, s.span[k], base));
      });
}
__global__ void ema_spans_kernel(EmaSpans<float> s, float decay, int64_t total_items) {
  for_span_items(
      total_items, [&](int k) { return ema_piece(s, k); },
      [&](int k, int64_t e, bool wide) { ema_item(s.teacher[k], s.student[k], e, wide, decay); });
}
}  // namespace

void adam_step_f32(float* p, const float* g, float* m, float* v, int64_t n, const AdamParams& a) {
  const Piece pc = make_piece(p, n, co_aligned(p, g, m, v));
  if (n) LAUNCH_CHECK(launch(adam_kernel, grid_for(items(pc), kBlock), kBlock, 0, nullptr, p, g, m, v, pc, a));
}
void sgd_step_f32(float* p, const float* g, float* buf, int64_t n, const SgdParams& s) {
  const Piece pc = make_piece(p, n, co_aligned(p, g, buf));
  if (n) LAUNCH_CHECK(launch(sgd_kernel, grid_for(items(pc), kBlock), kBlock, 0, nullptr, p, g, buf, pc, s));
}
void ema_step_f32(float* t, const float* s, int64_t n, float decay) {
  const Piece pc = make_piece(t, n, co_aligned(t, s));
  if (n) LAUNCH_CHECK(launch(ema_kernel, grid_for(items(pc), kBlock), kBlock, 0, nullptr, t, s, pc, decay));
}

void adam_arena_f32(float* p, const float* g, float* m, float* v, const ArenaSpans& s, const AdamParams& a) {
  if (!s.total) return;
  const bool vec = co_aligned(p, g, m, v);
  int64_t total = 0;
  for (int k = 0; k < s.n; ++k) total += items(arena_piece(s, k, p, vec));
  LAUNCH_CHECK(launch(adam_arena_kernel, grid_for(total, kBlock), kBlock, 0, nullptr, p, g, m, v, s, a, vec, total));
}
void sgd_arena_f32(float* p, const float* g, float* buf, const ArenaSpans& s, const SgdParams& sp) {
  if (!s.total) return;
  const bool vec = co_aligned(p, g, buf);
  int64_t total = 0;
  for (int k = 0; k < s.n; ++k) total += items(arena_piece(s, k, p, vec));
  LAUNCH_CHECK(launch(sgd_arena_kernel, grid_for(total, kBlock), kBlock, 0, nullptr, p, g, buf, s, sp, vec, total));
}
void ema_spans_f32(const EmaSpans<float>& s, float decay) {
  if (!s.total) return;
  int64_t total = 0;
  for (int k = 0; k < s.n; ++k) total += items(ema_piece(s, k));
  LAUNCH_CHECK(launch(ema_spans_kernel, grid_for(total, kBlock), kBlock, 0, nullptr, s, decay, total));
}

}  // namespace kernels::KERNELS_NS
