// The recurrence of Keras' LSTM (gates i, f, c, o) on CPUs with AVX-512 BF16: one kernel per loop, forward and back.
//
// models/compiled_lstm.py builds and loads this file and wraps the two ops in fast_lstm's loop contract; the input
// product, the bias's place and the weight gradients stay in TensorFlow (models/fast_lstm.py). Each step's product
// h @ recurrent_kernel runs in bfloat16 with float32 sums (vdpbf16ps); the cell state and the gates stay float32.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using tensorflow::bfloat16;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

// ---- products: rows x K (bfloat16) @ K x N (bfloat16, packed in pairs of rows) -> rows x N (float32) ----

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

// a [rows, K] bfloat16 (K even), w packed [K/2][N][2] (N a multiple of 16) -> out [rows, N] float32
void Product(const uint16_t* a, int rows, int K, const uint16_t* w, int N, float* out) {
  if (N % 48 == 0) return ProductChunks<3>(a, rows, K, w, N, out);
  if (N % 32 == 0) return ProductChunks<2>(a, rows, K, w, N, out);
  return ProductChunks<1>(a, rows, K, w, N, out);
}

// ---- element-wise: float32 throughout ----

inline __m512 Exp(__m512 x) {  // 2^(x log2 e) with a degree-5 polynomial on [-0.5, 0.5]: relative error about 2e-7
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.f)), _mm512_set1_ps(88.f));
  __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504f));
  __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(1.3333558e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6180291e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}
inline __m512 Sigmoid(__m512 x) {
  return _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_add_ps(_mm512_set1_ps(1.f), Exp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}
inline __m512 Tanh(__m512 x) { return _mm512_fmsub_ps(_mm512_set1_ps(2.f), Sigmoid(_mm512_add_ps(x, x)), _mm512_set1_ps(1.f)); }

inline __m512 Load(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 Load(const bfloat16* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
inline void Store(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
inline void Store(bfloat16* p, __m512 v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v)); }
inline void Store(uint16_t* p, __m512 v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v)); }

bool CheckKernel(OpKernelContext* ctx, const Tensor& packed, int K, int N) {
  if (packed.dims() != 3 || packed.dim_size(0) * 2 != K || packed.dim_size(1) != N || packed.dim_size(2) != 2) {
    ctx->CtxFailure(tensorflow::errors::InvalidArgument("the packed kernel must be [", K / 2, ", ", N, ", 2], not ", packed.shape().DebugString()));
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

template <typename T>
class ForwardOp : public OpKernel {
 public:
  explicit ForwardOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x_part = ctx->input(0), &bias = ctx->input(1), &h0 = ctx->input(2), &c0 = ctx->input(3), &kernel = ctx->input(4);
    const uint16_t* w = reinterpret_cast<const uint16_t*>(kernel.flat<bfloat16>().data());
    const int time = x_part.dim_size(0), batch = x_part.dim_size(1), N = x_part.dim_size(2), U = N / 4;
    if (!CheckShapes(ctx, U, time, batch) || !CheckKernel(ctx, kernel, U, N)) return;
    Tensor *outputs, *h_out, *c_out, *cells, *gates;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({time, batch, U}), &outputs));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({batch, U}), &h_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({batch, U}), &c_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({time, batch, U}), &cells));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({time, batch, N}), &gates));
    const T* x = x_part.flat<T>().data();
    const float* b = bias.flat<float>().data();
    std::vector<uint16_t> h(static_cast<size_t>(batch) * U);
    std::vector<float> z(static_cast<size_t>(batch) * N);
    float* c = c_out->flat<float>().data();
    float* h_last = h_out->flat<float>().data();
    std::memcpy(c, c0.flat<float>().data(), sizeof(float) * batch * U);
    for (int i = 0; i < batch * U; i += 16) Store(h.data() + i, Load(h0.flat<float>().data() + i));
    std::memcpy(h_last, h0.flat<float>().data(), sizeof(float) * batch * U);
    for (int t = 0; t < time; t++) {
      Product(h.data(), batch, U, w, N, z.data());
      for (int r = 0; r < batch; r++) {
        const size_t zr = static_cast<size_t>(r) * N, xr = (static_cast<size_t>(t) * batch + r) * N;
        const size_t ur = static_cast<size_t>(r) * U, out_r = (static_cast<size_t>(t) * batch + r) * U;
        float* g = gates->flat<float>().data() + xr;
        for (int u = 0; u < U; u += 16) {
          __m512 gate[4];
          for (int k = 0; k < 4; k++) {
            const int n = k * U + u;
            __m512 pre = _mm512_add_ps(_mm512_add_ps(Load(z.data() + zr + n), Load(x + xr + n)), Load(b + n));
            gate[k] = k == 2 ? Tanh(pre) : Sigmoid(pre);
            Store(g + n, gate[k]);
          }
          __m512 cell = _mm512_fmadd_ps(gate[1], Load(c + ur + u), _mm512_mul_ps(gate[0], gate[2]));
          Store(c + ur + u, cell);
          Store(cells->flat<float>().data() + out_r + u, cell);
          __m512 hh = _mm512_mul_ps(gate[3], Tanh(cell));
          Store(outputs->flat<T>().data() + out_r + u, hh);
          Store(h.data() + ur + u, hh);
          if (t == time - 1) Store(h_last + ur + u, hh);
        }
      }
    }
  }
};

template <typename T>
class BackwardOp : public OpKernel {
 public:
  explicit BackwardOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &d_outputs = ctx->input(0), &d_h_in = ctx->input(1), &d_c_in = ctx->input(2), &gates = ctx->input(3),
                 &cells = ctx->input(4), &c0 = ctx->input(5), &kernel = ctx->input(6);
    const int time = gates.dim_size(0), batch = gates.dim_size(1), N = gates.dim_size(2), U = N / 4;
    if (!CheckShapes(ctx, U, time, batch) || !CheckKernel(ctx, kernel, N, U)) return;
    Tensor *d_gates, *d_bias, *d_h0, *d_c0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({time, batch, N}), &d_gates));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({N}), &d_bias));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({batch, U}), &d_h0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({batch, U}), &d_c0));
    const uint16_t* wt = reinterpret_cast<const uint16_t*>(kernel.flat<bfloat16>().data());  // W transposed, packed
    float* d_h = d_h0->flat<float>().data();
    float* d_c = d_c0->flat<float>().data();
    float* db = d_bias->flat<float>().data();
    std::memcpy(d_h, d_h_in.flat<float>().data(), sizeof(float) * batch * U);
    std::memcpy(d_c, d_c_in.flat<float>().data(), sizeof(float) * batch * U);
    std::memset(db, 0, sizeof(float) * N);
    std::vector<uint16_t> d_z(static_cast<size_t>(batch) * N);
    const T* d_out = d_outputs.flat<T>().data();
    const float* g_all = gates.flat<float>().data();
    const float* c_all = cells.flat<float>().data();
    const __m512 one = _mm512_set1_ps(1.f);
    for (int t = time - 1; t >= 0; t--) {
      for (int r = 0; r < batch; r++) {
        const size_t ur = static_cast<size_t>(r) * U, out_r = (static_cast<size_t>(t) * batch + r) * U;
        const size_t gr = (static_cast<size_t>(t) * batch + r) * N;
        const float* c_prev = t > 0 ? c_all + out_r - static_cast<size_t>(batch) * U : c0.flat<float>().data() + ur;
        for (int u = 0; u < U; u += 16) {
          __m512 i = Load(g_all + gr + u), f = Load(g_all + gr + U + u), g = Load(g_all + gr + 2 * U + u), o = Load(g_all + gr + 3 * U + u);
          __m512 dh = _mm512_add_ps(Load(d_out + out_r + u), Load(d_h + ur + u));
          __m512 tanh_c = Tanh(Load(c_all + out_r + u));
          __m512 dc = _mm512_fmadd_ps(_mm512_mul_ps(dh, o), _mm512_fnmadd_ps(tanh_c, tanh_c, one), Load(d_c + ur + u));
          __m512 dz[4] = {
              _mm512_mul_ps(_mm512_mul_ps(dc, g), _mm512_mul_ps(i, _mm512_sub_ps(one, i))),
              _mm512_mul_ps(_mm512_mul_ps(dc, Load(c_prev + u)), _mm512_mul_ps(f, _mm512_sub_ps(one, f))),
              _mm512_mul_ps(_mm512_mul_ps(dc, i), _mm512_fnmadd_ps(g, g, one)),
              _mm512_mul_ps(_mm512_mul_ps(dh, tanh_c), _mm512_mul_ps(o, _mm512_sub_ps(one, o))),
          };
          for (int k = 0; k < 4; k++) {
            const int n = k * U + u;
            Store(d_gates->flat<T>().data() + gr + n, dz[k]);
            Store(d_z.data() + static_cast<size_t>(r) * N + n, dz[k]);
            Store(db + n, _mm512_add_ps(Load(db + n), dz[k]));
          }
          Store(d_c + ur + u, _mm512_mul_ps(dc, f));
        }
      }
      Product(d_z.data(), batch, N, wt, U, d_h);  // the gradient of the previous step's h
    }
  }
};

}  // namespace

REGISTER_OP("CharbookLstmForward")
    .Input("x_part: T")
    .Input("bias: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("packed_kernel: bfloat16")
    .Output("outputs: T")
    .Output("h: float")
    .Output("c: float")
    .Output("cells: float")
    .Output("gates: float")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto x = c->input(0);
      auto state = c->input(2);
      auto units = c->Dim(state, 1);
      c->set_output(0, c->MakeShape({c->Dim(x, 0), c->Dim(x, 1), units}));
      c->set_output(1, state);
      c->set_output(2, state);
      c->set_output(3, c->MakeShape({c->Dim(x, 0), c->Dim(x, 1), units}));
      c->set_output(4, x);
      return absl::OkStatus();
    });

REGISTER_OP("CharbookLstmBackward")
    .Input("d_outputs: T")
    .Input("d_h: float")
    .Input("d_c: float")
    .Input("gates: float")
    .Input("cells: float")
    .Input("c0: float")
    .Input("packed_kernel_t: bfloat16")
    .Output("d_gates: T")
    .Output("d_bias: float")
    .Output("d_h0: float")
    .Output("d_c0: float")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      auto gates = c->input(3);
      c->set_output(0, gates);
      c->set_output(1, c->MakeShape({c->Dim(gates, 2)}));
      c->set_output(2, c->input(1));
      c->set_output(3, c->input(2));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("CharbookLstmForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"), ForwardOp<float>);
REGISTER_KERNEL_BUILDER(Name("CharbookLstmForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<bfloat16>("T"), ForwardOp<bfloat16>);
REGISTER_KERNEL_BUILDER(Name("CharbookLstmBackward").Device(tensorflow::DEVICE_CPU).TypeConstraint<float>("T"), BackwardOp<float>);
REGISTER_KERNEL_BUILDER(Name("CharbookLstmBackward").Device(tensorflow::DEVICE_CPU).TypeConstraint<bfloat16>("T"), BackwardOp<bfloat16>);
