// The LSTM's two loops, written once for every instruction set models/lstm_kernel.cc compiles them for.
//
// lstm_kernel.cc includes this file once per instruction set, inside a namespace that first defines the vector
// type V (kWidth floats), its arithmetic (Set1, Add, Sub, Mul, Div, Fmadd, Fnmadd, Min, Max, Round to the nearest
// integer, TimesTwoTo(x, n) = x 2^n), Load and Store for float (and bfloat16 where the set has it), `Multiplied`
// (the type the products take h and d_gates in) with a Store for it, and Product(a [rows, K] Multiplied, the kernel,
// K, N, out [rows, N] float32). Everything but the products is float32: gates, cell state, gradients.

// exp(x) = 2^(x log2 e): 2^n for the nearest integer n, times a degree-5 polynomial for the rest, in [-0.5, 0.5]
// (relative error about 2e-7). x is clamped to where 2^n is a normal float.
inline V Exp(V x) {
  const V t = Mul(Min(Max(x, Set1(-87.f)), Set1(88.f)), Set1(1.44269504f));
  const V n = Round(t), f = Sub(t, n);
  V p = Set1(1.3333558e-3f);
  for (float c : {9.6180291e-3f, 5.5504109e-2f, 2.4022651e-1f, 6.9314718e-1f, 1.f}) p = Fmadd(p, f, Set1(c));
  return TimesTwoTo(p, n);
}

inline V Sigmoid(V x) { return Div(Set1(1.f), Add(Set1(1.f), Exp(Sub(Set1(0.f), x)))); }
inline V Tanh(V x) { return Sub(Mul(Set1(2.f), Sigmoid(Add(x, x))), Set1(1.f)); }

// The step's input part of the gates, StepInput (lstm_kernel.cc): a row of x_part or of the table, the layer's inputs
// multiplied by the kernel's first rows, or both; bias [4U], h0 and c0 [batch, U], w the kernel ([inputs; recurrent]
// or the recurrent alone) -> outputs [time, batch, U], the last h and c, cells [time, batch, U], activated gates i, f,
// c, o [time, batch, 4U]; each for `rows` only.
template <typename T>
void Forward(const StepInput<T>& in, const float* bias, const float* h0, const float* c0, const Multiplied* w, int time, Rows rows,
             int U, T* outputs, float* h_last, float* c, float* cells, float* gates) {
  const int N = 4 * U, batch = rows.count, K = in.input_size + U;
  // Each row of `a` holds the step's inputs, then the last h: one product by [input kernel; recurrent kernel] makes
  // both parts of the gates.
  std::vector<Multiplied> a(static_cast<size_t>(batch) * K);
  std::vector<float> z(static_cast<size_t>(batch) * N);
  std::memcpy(c + rows.At(0, U), c0 + rows.At(0, U), sizeof(float) * batch * U);
  std::memcpy(h_last + rows.At(0, U), h0 + rows.At(0, U), sizeof(float) * batch * U);
  for (int r = 0; r < batch; r++)
    for (int u = 0; u < U; u += kWidth) Store(a.data() + static_cast<size_t>(r) * K + in.input_size + u, Load(h0 + rows.At(r, U) + u));
  for (int t = 0; t < time; t++) {
    for (int r = 0; r < batch && in.inputs; r++)
      for (int k = 0; k < in.input_size; k += kWidth)
        Store(a.data() + static_cast<size_t>(r) * K + k, Load(in.inputs + rows.At(t, r, in.input_size) + k));
    Product(a.data(), batch, K, w, N, z.data());
    for (int r = 0; r < batch; r++) {
      const size_t zr = static_cast<size_t>(r) * N, gr = rows.At(t, r, N), out_r = rows.At(t, r, U);
      const T* xr = in.ids ? in.x_part + static_cast<size_t>(in.ids[rows.At(t, r, 1)]) * N : in.x_part ? in.x_part + gr : nullptr;
      Multiplied* hr = a.data() + static_cast<size_t>(r) * K + in.input_size;
      float* cr = c + rows.At(r, U);
      for (int u = 0; u < U; u += kWidth) {
        V gate[4];
        for (int k = 0; k < 4; k++) {
          const int n = k * U + u;
          V pre = Add(Load(z.data() + zr + n), Load(bias + n));
          if (xr) pre = Add(pre, Load(xr + n));
          gate[k] = k == 2 ? Tanh(pre) : Sigmoid(pre);
          Store(gates + gr + n, gate[k]);
        }
        V cell = Fmadd(gate[1], Load(cr + u), Mul(gate[0], gate[2]));
        Store(cr + u, cell);
        Store(cells + out_r + u, cell);
        V hh = Mul(gate[3], Tanh(cell));
        Store(outputs + out_r + u, hh);
        Store(hr + u, hh);
        if (t == time - 1) Store(h_last + rows.At(r, U) + u, hh);
      }
    }
  }
}

// From the last step back, for `rows`, given the gradients of the outputs and of the last h and c, the forward's gates
// and cells, c0 and the recurrent kernel transposed (wt) -> the gradients of the gates before activation [time, batch, 4U],
// of h0 and of c0 [batch, U] (d_h and d_c arrive holding those of the last h and c), and these rows' share of the bias'
// gradient [4U] and, given the forward's ids, of the table's [vocab, 4U] (each summed, not set).
template <typename T>
void Backward(const T* d_out, const float* g_all, const float* c_all, const float* c0, const Multiplied* wt, int time, Rows rows,
              int U, T* d_gates, float* d_bias, float* d_h, float* d_c, const int32_t* ids, float* d_table) {
  const int N = 4 * U, batch = rows.count;
  // Where T holds what the products take (float32, or bfloat16 in both), each step's product reads its d_gates
  // where they were just written; otherwise from a copy in the products' type.
  constexpr bool kMultiplyFromOutput = sizeof(T) == sizeof(Multiplied);
  std::vector<Multiplied> d_z(kMultiplyFromOutput ? 0 : static_cast<size_t>(batch) * N);
  const V one = Set1(1.f);
  d_h += rows.At(0, U), d_c += rows.At(0, U);
  for (int t = time - 1; t >= 0; t--) {
    for (int r = 0; r < batch; r++) {
      const size_t ur = static_cast<size_t>(r) * U, out_r = rows.At(t, r, U), gr = rows.At(t, r, N);
      const float* c_prev = t > 0 ? c_all + rows.At(t - 1, r, U) : c0 + rows.At(r, U);
      float* d_table_row = ids ? d_table + static_cast<size_t>(ids[rows.At(t, r, 1)]) * N : nullptr;
      for (int u = 0; u < U; u += kWidth) {
        V i = Load(g_all + gr + u), f = Load(g_all + gr + U + u), g = Load(g_all + gr + 2 * U + u), o = Load(g_all + gr + 3 * U + u);
        V dh = Add(Load(d_out + out_r + u), Load(d_h + ur + u));
        V tanh_c = Tanh(Load(c_all + out_r + u));
        V dc = Fmadd(Mul(dh, o), Fnmadd(tanh_c, tanh_c, one), Load(d_c + ur + u));
        V dz[4] = {
            Mul(Mul(dc, g), Mul(i, Sub(one, i))),
            Mul(Mul(dc, Load(c_prev + u)), Mul(f, Sub(one, f))),
            Mul(Mul(dc, i), Fnmadd(g, g, one)),
            Mul(Mul(dh, tanh_c), Mul(o, Sub(one, o))),
        };
        for (int k = 0; k < 4; k++) {
          const int n = k * U + u;
          Store(d_gates + gr + n, dz[k]);
          if constexpr (!kMultiplyFromOutput) Store(d_z.data() + static_cast<size_t>(r) * N + n, dz[k]);
          Store(d_bias + n, Add(Load(d_bias + n), dz[k]));
          if (d_table_row) Store(d_table_row + n, Add(Load(d_table_row + n), dz[k]));
        }
        Store(d_c + ur + u, Mul(dc, f));
      }
    }
    // This step's rows are side by side in d_gates: the product reads them there (rows.At(t, 0, N) onward).
    const Multiplied* step_d_z = kMultiplyFromOutput ? reinterpret_cast<const Multiplied*>(d_gates + rows.At(t, 0, N)) : d_z.data();
    Product(step_d_z, batch, N, wt, U, d_h);  // the gradient of the previous step's h
  }
}
