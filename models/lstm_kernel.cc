// The recurrence of Keras' LSTM (gates i, f, c, o) as two TensorFlow ops: one kernel per loop, forward and back.
//
// models/compiled_lstm.py builds and loads this file and wraps the two ops in fast_lstm's loop contract; the input
// product and the weight gradients stay in TensorFlow (models/fast_lstm.py), except in the first LSTM, whose input
// product the ops look up per id in a table (and sum the table's gradient per id). Each op runs a batch's rows in
// groups side by side, one per core (RunRowGroups). The loops
// (lstm_kernel_loops.h) are compiled twice, for two instruction sets, each inside a #pragma GCC target region:
// - AVX2 and FMA (x86-64 CPUs since 2013): each step's product h @ recurrent_kernel in float32;
// - AVX-512 BF16: the product in bfloat16 with float32 sums (vdpbf16ps), on the kernel packed in pairs of rows.
// The ops take the second when handed a packed bfloat16 kernel, which compiled_lstm does only on CPUs that have it;
// the library itself is built for AVX2 and FMA. Cell state and gates stay float32 in both.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/blocking_counter.h"

namespace {

using tensorflow::bfloat16;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

// The rows one call runs: `count` rows from row `first` of arrays that hold `batch` rows per step. A layer's batch
// is run as a few such calls side by side, one per core (the ops in lstm_kernel.cc); rows never meet in an LSTM.
struct Rows {
  int first, count, batch;
  size_t At(int t, int r, int width) const { return (static_cast<size_t>(t) * batch + first + r) * width; }  // [time, batch, width]
  size_t At(int r, int width) const { return (static_cast<size_t>(first) + r) * width; }                       // [batch, width]
};

// What each step adds to h @ recurrent kernel in its gates: a row of x_part [time, batch, 4U] (an input product made
// outside), or of a table [vocab, 4U] of them picked by ids [time, batch]; and/or the layer's inputs [time, batch,
// input_size], multiplied in the same product as h by the kernel's first input_size rows (the kernel [inputs; recurrent]).
template <typename T>
struct StepInput {
  const T* x_part = nullptr;
  const int32_t* ids = nullptr;
  const T* inputs = nullptr;
  int input_size = 0;
};

// ---- AVX2 and FMA: products in float32 ----
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

using V = __m256;
constexpr int kWidth = 8;
using Multiplied = float;
inline V Set1(float x) { return _mm256_set1_ps(x); }
inline V Add(V a, V b) { return _mm256_add_ps(a, b); }
inline V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V Div(V a, V b) { return _mm256_div_ps(a, b); }
inline V Fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }   // a b + c
inline V Fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); } // c - a b
inline V Load(const float* p) { return _mm256_loadu_ps(p); }
inline void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
inline V Min(V a, V b) { return _mm256_min_ps(a, b); }
inline V Max(V a, V b) { return _mm256_max_ps(a, b); }
inline V Round(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline V TimesTwoTo(V x, V n) {  // x 2^n for integral n in [-126, 127]: 2^n built in a float's exponent bits
  return Mul(x, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)));
}

// ROWS rows of `a` times one panel of w (16 columns, K rows, contiguous), summed over all of K. With 6 rows the 12 sums
// stay in registers (AVX2 has 16), each row of the panel loaded from cache serves 6 rows, and 12 independent sums
// keep both FMA units busy.
template <int ROWS>
inline void Block(const float* a, int K, const float* panel, int N, float* out) {
  V acc[ROWS][2];
  for (int r = 0; r < ROWS; r++)
    for (int j = 0; j < 2; j++) acc[r][j] = _mm256_setzero_ps();
  for (int p = 0; p < K; p++) {
    V b[2];
    for (int j = 0; j < 2; j++) b[j] = Load(panel + 16 * p + 8 * j);
    for (int r = 0; r < ROWS; r++) {
      const V x = Set1(a[static_cast<size_t>(r) * K + p]);
      for (int j = 0; j < 2; j++) acc[r][j] = _mm256_fmadd_ps(x, b[j], acc[r][j]);
    }
  }
  for (int r = 0; r < ROWS; r++)
    for (int j = 0; j < 2; j++) Store(out + static_cast<size_t>(r) * N + 8 * j, acc[r][j]);
}

// a [rows, K] @ w -> out [rows, N], w packed in panels [N/16][K][16]: a panel is read in order, and stays in cache
// for all rows (the plain [K, N] layout puts a column block's rows N floats apart, where they evict each other).
// Rows go in blocks of 6, the last 7 to 11 in two blocks of 3 to 6: a block of fewer rows keeps too few sums in flight.
void Product(const float* a, int rows, int K, const float* w, int N, float* out) {
  for (int n0 = 0; n0 < N; n0 += 16) {
    const float* panel = w + static_cast<size_t>(n0) * K;
    for (int r0 = 0; r0 < rows;) {
      const int rest = rows - r0;
      const int block = rest >= 12 || rest <= 6 ? (rest < 6 ? rest : 6) : rest / 2;
      const float* a_rows = a + static_cast<size_t>(r0) * K;
      float* out_rows = out + static_cast<size_t>(r0) * N + n0;
      switch (block) {
        case 6: Block<6>(a_rows, K, panel, N, out_rows); break;
        case 5: Block<5>(a_rows, K, panel, N, out_rows); break;
        case 4: Block<4>(a_rows, K, panel, N, out_rows); break;
        case 3: Block<3>(a_rows, K, panel, N, out_rows); break;
        case 2: Block<2>(a_rows, K, panel, N, out_rows); break;
        default: Block<1>(a_rows, K, panel, N, out_rows); break;
      }
      r0 += block;
    }
  }
}

#include "lstm_kernel_loops.h"

}  // namespace avx2
#pragma GCC pop_options

// ---- AVX-512 BF16: products in bfloat16, summed in float32 ----
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,fma")
namespace avx512_bf16 {

using V = __m512;
constexpr int kWidth = 16;
using Multiplied = uint16_t;  // bfloat16's bits
inline V Set1(float x) { return _mm512_set1_ps(x); }
inline V Add(V a, V b) { return _mm512_add_ps(a, b); }
inline V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V Div(V a, V b) { return _mm512_div_ps(a, b); }
inline V Fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V Fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
inline V Load(const float* p) { return _mm512_loadu_ps(p); }
inline V Load(const bfloat16* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
inline void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
inline void Store(uint16_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v)); }
inline void Store(bfloat16* p, V v) { Store(reinterpret_cast<uint16_t*>(p), v); }
inline V Min(V a, V b) { return _mm512_min_ps(a, b); }
inline V Max(V a, V b) { return _mm512_max_ps(a, b); }
inline V Round(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline V TimesTwoTo(V x, V n) { return _mm512_scalef_ps(x, n); }

// ROWS rows of `a` times CHUNKS x 16 columns of w, summed over all of K. With 8 rows and 3 chunks the 24 sums stay in
// registers (AVX-512 has 32) and each pair-row of w loaded from cache serves 8 rows; `a` is read two bfloat16 at a time.
template <int ROWS, int CHUNKS>
inline void Block(const uint32_t* a, int a_stride, const uint16_t* w, int K2, int N, float* out, int out_stride) {
  __m512 acc[ROWS][CHUNKS];
  for (int r = 0; r < ROWS; r++)
    for (int j = 0; j < CHUNKS; j++) acc[r][j] = _mm512_setzero_ps();
  for (int p = 0; p < K2; p++) {
    const uint16_t* wp = w + static_cast<size_t>(p) * N * 2;
    __m512bh b[CHUNKS];
    for (int j = 0; j < CHUNKS; j++) b[j] = (__m512bh)_mm512_loadu_si512(wp + 32 * j);
    for (int r = 0; r < ROWS; r++) {
      __m512bh x = (__m512bh)_mm512_set1_epi32(a[static_cast<size_t>(r) * a_stride + p]);
      for (int j = 0; j < CHUNKS; j++) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], x, b[j]);
    }
  }
  for (int r = 0; r < ROWS; r++)
    for (int j = 0; j < CHUNKS; j++) _mm512_storeu_ps(out + static_cast<size_t>(r) * out_stride + 16 * j, acc[r][j]);
}

template <int CHUNKS>
void ProductChunks(const uint16_t* a, int rows, int K, const uint16_t* w, int N, float* out) {
  const uint32_t* a32 = reinterpret_cast<const uint32_t*>(a);
  const int K2 = K / 2;
  for (int n0 = 0; n0 < N; n0 += 16 * CHUNKS) {
    int r0 = 0;
    for (; r0 + 8 <= rows; r0 += 8)
      Block<8, CHUNKS>(a32 + static_cast<size_t>(r0) * K2, K2, w + static_cast<size_t>(n0) * 2, K2, N, out + static_cast<size_t>(r0) * N + n0, N);
    for (; r0 < rows; r0++)
      Block<1, CHUNKS>(a32 + static_cast<size_t>(r0) * K2, K2, w + static_cast<size_t>(n0) * 2, K2, N, out + static_cast<size_t>(r0) * N + n0, N);
  }
}

// a [rows, K] bfloat16 (K even) @ w packed [K/2][N][2] (N a multiple of 16) -> out [rows, N] float32
void Product(const uint16_t* a, int rows, int K, const uint16_t* w, int N, float* out) {
  if (N % 48 == 0) return ProductChunks<3>(a, rows, K, w, N, out);
  if (N % 32 == 0) return ProductChunks<2>(a, rows, K, w, N, out);
  return ProductChunks<1>(a, rows, K, w, N, out);
}

#include "lstm_kernel_loops.h"

}  // namespace avx512_bf16
#pragma GCC pop_options

// ---- the ops: shapes checked, then the loops of the instruction set the kernel's dtype asks for ----

// The recurrent kernel (or its transpose), [K, N], as the products read it: in bfloat16 packed in pairs of rows,
// [K/2, N, 2]; in float32 in panels of 16 columns, [N/16, K, 16].
bool CheckKernel(OpKernelContext* ctx, const Tensor& kernel, int K, int N) {
  const bool bf16 = kernel.dtype() == tensorflow::DT_BFLOAT16;
  const int expected[3] = {bf16 ? K / 2 : N / 16, bf16 ? N : K, bf16 ? 2 : 16};
  if (kernel.dims() != 3 || kernel.dim_size(0) != expected[0] || kernel.dim_size(1) != expected[1] || kernel.dim_size(2) != expected[2]) {
    ctx->CtxFailure(tensorflow::errors::InvalidArgument("the packed kernel must be [", expected[0], ", ", expected[1], ", ", expected[2],
                                                        "], not ", kernel.shape().DebugString()));
    return false;
  }
  if (bf16 && !__builtin_cpu_supports("avx512bf16")) {
    ctx->CtxFailure(tensorflow::errors::FailedPrecondition("a bfloat16 kernel needs a CPU with AVX-512 BF16"));
    return false;
  }
  return true;
}

bool CheckShapes(OpKernelContext* ctx, int units, int time, int batch) {
  if (units <= 0 || units % 16 != 0) {
    ctx->CtxFailure(tensorflow::errors::InvalidArgument("units must be a positive multiple of 16, not ", units));
    return false;
  }
  if (time <= 0 || batch <= 0) {
    ctx->CtxFailure(tensorflow::errors::InvalidArgument("an empty sequence"));
    return false;
  }
  return true;
}
// float32 products take float32 inputs: bfloat16 ones would be rounded for nothing.
template <typename T>
bool CheckInputType(OpKernelContext* ctx, const Tensor& kernel) {
  if (kernel.dtype() == tensorflow::DT_FLOAT && !std::is_same_v<T, float>) {
    ctx->CtxFailure(tensorflow::errors::InvalidArgument("a float32 kernel takes float32 inputs, not bfloat16"));
    return false;
  }
  return true;
}

// Runs run(rows) for `groups` nearly equal groups of a batch's rows side by side: the last group on this thread, the
// others on the CPU device's thread pool (one per core, as fast_lstm.row_groups picks them).
template <typename Run>
void RunRowGroups(OpKernelContext* ctx, int batch, int groups, const Run& run) {
  groups = std::max(1, std::min(groups, batch));
  const auto rows = [&](int g) {
    const int first = static_cast<int>(static_cast<int64_t>(batch) * g / groups);
    return Rows{first, static_cast<int>(static_cast<int64_t>(batch) * (g + 1) / groups) - first, batch};
  };
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  if (pool->CurrentThreadId() != -1) {  // called from one of the pool's own threads: waiting on the pool could deadlock
    for (int g = 0; g < groups; g++) run(g, rows(g));
    return;
  }
  tensorflow::BlockingCounter others(groups - 1);
  for (int g = 0; g + 1 < groups; g++) {
    pool->Schedule([&, g] {
      run(g, rows(g));
      others.DecrementCount();
    });
  }
  run(groups - 1, rows(groups - 1));
  others.Wait();
}

// ids [time, batch], each a row of a table of `table_rows`; an empty tensor where the op takes no ids.
bool CheckIds(OpKernelContext* ctx, const Tensor& ids, int64_t table_rows) {
  if (ids.NumElements() == 0) return true;
  if (ids.dims() != 2) {
    ctx->CtxFailure(tensorflow::errors::InvalidArgument("ids must be [time, batch], not ", ids.shape().DebugString()));
    return false;
  }
  const int32_t* id = ids.flat<int32_t>().data();
  for (int64_t k = 0; k < ids.NumElements(); k++) {
    if (id[k] < 0 || id[k] >= table_rows) {
      ctx->CtxFailure(tensorflow::errors::InvalidArgument("id ", id[k], " is not a row of the table of ", table_rows, " rows"));
      return false;
    }
  }
  return true;
}

template <typename T>
class ForwardOp : public OpKernel {
 public:
  explicit ForwardOp(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, c->GetAttr("row_groups", &row_groups_)); }
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &ids = ctx->input(1), &inputs = ctx->input(2), &bias = ctx->input(3), &h0 = ctx->input(4),
                 &c0 = ctx->input(5), &kernel = ctx->input(6);
    const bool added = x.NumElements() > 0, lookup = ids.NumElements() > 0, fused = inputs.NumElements() > 0;
    if (!added && !fused) return ctx->CtxFailure(tensorflow::errors::InvalidArgument("the op needs x_part or inputs"));
    // time and batch from the ids, else x_part, else the inputs: every one of them given must agree
    const Tensor& steps = lookup ? ids : added ? x : inputs;
    if (steps.dims() < 2 || h0.dims() != 2) return ctx->CtxFailure(tensorflow::errors::InvalidArgument("x_part, ids or inputs must be [time, batch, ...]"));
    const int time = steps.dim_size(0), batch = steps.dim_size(1), U = h0.dim_size(1), N = 4 * U;
    const int input_size = fused ? inputs.dim_size(inputs.dims() - 1) : 0;
    const auto is = [](const Tensor& t, std::initializer_list<int64_t> dims) { return t.shape() == TensorShape(dims); };
    if ((added && !(lookup ? x.dims() == 2 && x.dim_size(1) == N : is(x, {time, batch, N}))) || (fused && !is(inputs, {time, batch, input_size})) ||
        !is(h0, {batch, U}) || !is(c0, {batch, U}) || !is(bias, {N})) {
      return ctx->CtxFailure(tensorflow::errors::InvalidArgument("shapes that do not agree: x_part ", x.shape().DebugString(), ", ids ",
                                                                 ids.shape().DebugString(), ", inputs ", inputs.shape().DebugString(), ", h0 ",
                                                                 h0.shape().DebugString()));
    }
    if (input_size % 16) return ctx->CtxFailure(tensorflow::errors::InvalidArgument("the inputs' size must be a multiple of 16, not ", input_size));
    if ((lookup && !CheckIds(ctx, ids, x.dim_size(0))) || !CheckShapes(ctx, U, time, batch) || !CheckKernel(ctx, kernel, input_size + U, N) ||
        !CheckInputType<T>(ctx, kernel)) {
      return;
    }
    Tensor *outputs, *h, *c, *cells, *gates;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({time, batch, U}), &outputs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({batch, U}), &h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({batch, U}), &c));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({time, batch, U}), &cells));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({time, batch, N}), &gates));
    StepInput<T> in;
    if (added) in.x_part = x.flat<T>().data();
    if (lookup) in.ids = ids.flat<int32_t>().data();
    if (fused) in.inputs = inputs.flat<T>().data(), in.input_size = input_size;
    RunRowGroups(ctx, batch, row_groups_, [&](int, Rows rows) {
      const auto args = [&](auto* w) {
        return std::make_tuple(std::cref(in), bias.flat<float>().data(), h0.flat<float>().data(), c0.flat<float>().data(), w, time, rows, U,
                               outputs->flat<T>().data(), h->flat<float>().data(), c->flat<float>().data(), cells->flat<float>().data(),
                               gates->flat<float>().data());
      };
      if (kernel.dtype() == tensorflow::DT_BFLOAT16) {
        std::apply(avx512_bf16::Forward<T>, args(reinterpret_cast<const uint16_t*>(kernel.flat<bfloat16>().data())));
      } else if constexpr (std::is_same_v<T, float>) {
        std::apply(avx2::Forward<T>, args(kernel.flat<float>().data()));
      }
    });
  }

 private:
  int row_groups_;
};

template <typename T>
class BackwardOp : public OpKernel {
 public:
  explicit BackwardOp(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("row_groups", &row_groups_));
    OP_REQUIRES_OK(c, c->GetAttr("table_rows", &table_rows_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor &d_outputs = ctx->input(0), &d_h_in = ctx->input(1), &d_c_in = ctx->input(2), &gates = ctx->input(3),
                 &cells = ctx->input(4), &c0 = ctx->input(5), &kernel = ctx->input(6), &ids = ctx->input(7);
    const int time = gates.dim_size(0), batch = gates.dim_size(1), N = gates.dim_size(2), U = N / 4;
    const bool lookup = ids.NumElements() > 0;
    if (!CheckShapes(ctx, U, time, batch) || !CheckKernel(ctx, kernel, N, U) || !CheckInputType<T>(ctx, kernel)) return;
    if (!CheckIds(ctx, ids, table_rows_)) return;
    if (lookup && (ids.dim_size(0) != time || ids.dim_size(1) != batch)) {
      ctx->CtxFailure(tensorflow::errors::InvalidArgument("ids must be [", time, ", ", batch, "], not ", ids.shape().DebugString()));
      return;
    }
    Tensor *d_gates, *d_bias, *d_h, *d_c, *d_table;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({time, batch, N}), &d_gates));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({N}), &d_bias));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({batch, U}), &d_h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({batch, U}), &d_c));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({lookup ? table_rows_ : 0, N}), &d_table));
    std::memcpy(d_h->flat<float>().data(), d_h_in.flat<float>().data(), sizeof(float) * batch * U);
    std::memcpy(d_c->flat<float>().data(), d_c_in.flat<float>().data(), sizeof(float) * batch * U);
    // Each group of rows sums its own share of the bias' and the table's gradients; the shares are added after.
    const int groups = std::max(1, std::min(row_groups_, batch));
    const size_t table_size = static_cast<size_t>(d_table->NumElements());
    std::vector<std::vector<float>> d_bias_shares(groups, std::vector<float>(N)), d_table_shares(groups, std::vector<float>(table_size));
    RunRowGroups(ctx, batch, groups, [&](int g, Rows rows) {
      const auto args = [&](auto* wt) {
        return std::make_tuple(d_outputs.flat<T>().data(), gates.flat<float>().data(), cells.flat<float>().data(), c0.flat<float>().data(), wt,
                               time, rows, U, d_gates->flat<T>().data(), d_bias_shares[g].data(), d_h->flat<float>().data(),
                               d_c->flat<float>().data(), lookup ? ids.flat<int32_t>().data() : nullptr, d_table_shares[g].data());
      };
      if (kernel.dtype() == tensorflow::DT_BFLOAT16) {
        std::apply(avx512_bf16::Backward<T>, args(reinterpret_cast<const uint16_t*>(kernel.flat<bfloat16>().data())));
      } else if constexpr (std::is_same_v<T, float>) {
        std::apply(avx2::Backward<T>, args(kernel.flat<float>().data()));
      }
    });
    SumShares(d_bias_shares, d_bias->flat<float>().data());
    SumShares(d_table_shares, d_table->flat<float>().data());
  }

 private:
  static void SumShares(const std::vector<std::vector<float>>& shares, float* sum) {
    std::fill(sum, sum + shares[0].size(), 0.f);
    for (const auto& share : shares)
      for (size_t i = 0; i < share.size(); i++) sum[i] += share[i];
  }
  int row_groups_;
  tensorflow::int64 table_rows_;
};
}  // namespace

REGISTER_OP("CharbookLstmForward")
    .Input("x_part: T")
    .Input("ids: int32")
    .Input("inputs: T")
    .Input("bias: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("kernel: W")
    .Output("outputs: T")
    .Output("h: float")
    .Output("c: float")
    .Output("cells: float")
    .Output("gates: float")
    .Attr("T: {float, bfloat16}")
    .Attr("W: {float, bfloat16}")
    .Attr("row_groups: int >= 1 = 1")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      // time and batch from ids [time, batch] if given, else x_part [time, batch, 4U], else inputs [time, batch, input_size];
      // an input not given is an empty tensor [0].
      auto x = c->input(0), ids = c->input(1), inputs = c->input(2), state = c->input(4);
      const auto given = [&](tensorflow::shape_inference::ShapeHandle s, int rank) { return c->RankKnown(s) && c->Rank(s) == rank; };
      auto steps = given(ids, 2) ? ids : given(x, 3) ? x : inputs;
      tensorflow::shape_inference::DimensionHandle time = c->UnknownDim(), batch = c->UnknownDim(), gates;
      if (c->RankKnown(steps) && c->Rank(steps) >= 2) time = c->Dim(steps, 0), batch = c->Dim(steps, 1);
      auto units = c->Dim(state, 1);
      TF_RETURN_IF_ERROR(c->Multiply(units, 4, &gates));
      c->set_output(0, c->MakeShape({time, batch, units}));
      c->set_output(1, state);
      c->set_output(2, state);
      c->set_output(3, c->MakeShape({time, batch, units}));
      c->set_output(4, c->MakeShape({time, batch, gates}));
      return absl::OkStatus();
    });

REGISTER_OP("CharbookLstmBackward")
    .Input("d_outputs: T")
    .Input("d_h: float")
    .Input("d_c: float")
    .Input("gates: float")
    .Input("cells: float")
    .Input("c0: float")
    .Input("kernel_t: W")
    .Input("ids: int32")
    .Output("d_gates: T")
    .Output("d_bias: float")
    .Output("d_h0: float")
    .Output("d_c0: float")
    .Output("d_table: float")
    .Attr("T: {float, bfloat16}")
    .Attr("W: {float, bfloat16}")
    .Attr("row_groups: int >= 1 = 1")
    .Attr("table_rows: int >= 0 = 0")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto gates = c->input(3), ids = c->input(7);
      tensorflow::int64 table_rows;
      TF_RETURN_IF_ERROR(c->GetAttr("table_rows", &table_rows));
      const bool lookup = c->RankKnown(ids) && c->Rank(ids) == 2;
      c->set_output(0, gates);
      c->set_output(1, c->MakeShape({c->Dim(gates, 2)}));
      c->set_output(2, c->input(1));
      c->set_output(3, c->input(2));
      c->set_output(4, c->MakeShape({lookup ? table_rows : 0, c->Dim(gates, 2)}));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("CharbookLstmForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"), ForwardOp<float>);
REGISTER_KERNEL_BUILDER(Name("CharbookLstmForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<bfloat16>("T"), ForwardOp<bfloat16>);
REGISTER_KERNEL_BUILDER(Name("CharbookLstmBackward").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"), BackwardOp<float>);
REGISTER_KERNEL_BUILDER(Name("CharbookLstmBackward").Device(tensorflow::DEVICE_CPU).TypeConstraint<bfloat16>("T"), BackwardOp<bfloat16>);
