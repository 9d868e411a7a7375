// Generation off the page's thread: the network of models/char_lstm.py one character at a time (its `step`:
// Embedding -> LSTM -> LSTM -> Dense, Keras' gate order i, f, c, o) and the samplers of models/sampling.py,
// over Float32Arrays. The matrix products, nearly all the time, run in WebAssembly SIMD (multiply.wat), or in
// JavaScript where the browser lacks it or the page was opened with ?runtime=js (bench/README.md compares them).
"use strict";

let model = null;
let running = null; // the generation under way: {job, stopped, unseen, wake}
let multiplyInWasm = null; // the WebAssembly product, if in use: (x, matrix, out) byte offsets, n, rows

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === "load") {
    load(message.manifest, message.runtime).then(
      (seconds) => self.postMessage({ type: "ready", seconds, runtime: multiplyInWasm ? "WebAssembly SIMD" : "JavaScript" }),
      (error) => self.postMessage({ type: "error", message: String(error.message || error) }),
    );
  } else if (message.type === "generate") {
    if (running) {
      running.stopped = true; // a generation still under way (the page has moved on) ends here
      wakeUp(running);
    }
    generate(message);
  } else if (message.type === "stop") {
    if (running && running.job === message.job) {
      running.stopped = true;
      wakeUp(running);
    }
  } else if (message.type === "shown") {
    if (running && running.job === message.job) {
      running.unseen -= 1;
      wakeUp(running);
    }
  } else if (message.type === "probabilities") {
    const logits = prime(message.ids, model.probabilityState); // not the generation's: one may be under way
    self.postMessage({ type: "probabilities", request: message.request, probabilities: Array.from(softmax(logits)) });
  }
};

// --- weights: model.json describes each tensor of the weights file (web_export.py writes both) ---

async function load(manifest, runtime) {
  const start = performance.now();
  const [buffer, wasm] = await Promise.all([fetchBytes(manifest.weights.file), runtime === "js" ? null : fetchBytes("multiply.wasm")]);
  if (buffer.byteLength !== manifest.weights.bytes) {
    throw new Error(`${manifest.weights.file} is cut short or damaged (${buffer.byteLength} bytes, expected ${manifest.weights.bytes}); export the site again`);
  }
  // Every array the products read or write lives in one memory, which the WebAssembly product addresses by offset.
  const specs = Object.values(manifest.weights.tensors);
  const stateFloats = manifest.units.reduce((total, units, k) => total + 2 * units + manifest.weights.tensors[`outgoing_${k}`].shape[0], 0);
  const floats = specs.reduce((total, spec) => total + spec.shape.reduce((a, b) => a * b, 1), 0) + 2 * (stateFloats + manifest.vocab_size);
  const allocate = makeArena(floats + 4 * (specs.length + 6 * manifest.units.length + 2), wasm);
  const tensor = (name) => readTensor(buffer, manifest.weights.tensors[name], allocate);
  const units = manifest.units;
  model = {
    units,
    vocabSize: manifest.vocab_size,
    chars: ["", ...manifest.vocabulary.chars], // id 0 is the unknown character, never sampled
    firstGates: tensor("first_gates"), // [vocab, 4 * units[0]]: embedding @ kernel + bias, looked up per id
    // Per LSTM k, stored one row per output ([outputs, inputs]): the next LSTM's kernel and k's own recurrent
    // kernel side by side (char_lstm.StepWeights.outgoing), so one pass over h computes both.
    outgoing: units.map((_, k) => tensor(`outgoing_${k}`)),
    biases: units.slice(1).map((_, k) => tensor(`bias_${k + 1}`)),
    logitsKernel: tensor("logits_kernel"), // [vocab, units[last]]
    logitsBias: tensor("logits_bias"),
  };
  // Per LSTM: c [units], h [units] and `both`, h @ outgoing [next LSTM's 4 * units | own 4 * units]; and the logits.
  const makeState = () => {
    const state = units.map((n, k) => ({ c: allocate(n), h: allocate(n), both: allocate(model.outgoing[k].length / n) }));
    state.logits = allocate(model.vocabSize);
    return state;
  };
  model.generationState = makeState();
  model.probabilityState = makeState();
  model.scratch = new Float64Array(model.vocabSize);
  model.order = new Float64Array(model.vocabSize);
  return (performance.now() - start) / 1000;
}

async function fetchBytes(file) {
  const response = await fetch(file);
  if (!response.ok) throw new Error(`cannot load ${file}: the server answered ${response.status}`);
  return response.arrayBuffer();
}

// A function handing out zeroed Float32Arrays of one memory of `floats` floats (each 16-byte aligned): a
// WebAssembly memory with the product compiled into it when `wasm` is given and the browser runs it.
function makeArena(floats, wasm) {
  const bytes = floats * 4;
  let buffer = null;
  multiplyInWasm = null;
  if (wasm && WebAssembly.validate(wasm)) {
    try {
      const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
      multiplyInWasm = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { memory } }).exports.multiply;
      buffer = memory.buffer;
    } catch (error) {
      multiplyInWasm = null; // too large a memory for this browser: JavaScript it is
    }
  }
  buffer = buffer || new ArrayBuffer(bytes);
  let next = 0;
  return (count) => {
    const view = new Float32Array(buffer, next, count);
    next += Math.ceil(count / 4) * 16;
    return view;
  };
}

function readTensor(buffer, spec, allocate) {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const values = allocate(count);
  // Typed arrays read the platform's byte order: little-endian on every platform browsers run on, as written.
  if (spec.dtype === "float32") {
    values.set(new Float32Array(buffer, spec.offset, count));
  } else if (spec.dtype === "float16") {
    const halves = new Uint16Array(buffer, spec.offset, count);
    for (let i = 0; i < count; i++) values[i] = halfToFloat(halves[i]);
  } else if (spec.dtype === "int8") {
    // One scale per row (per output): value = int8 * scale.
    const bytes = new Int8Array(buffer, spec.offset, count);
    const scales = new Float32Array(buffer, spec.scales_offset, spec.shape[0]);
    const width = count / spec.shape[0];
    for (let i = 0; i < count; i++) values[i] = bytes[i] * scales[Math.floor(i / width)];
  } else {
    throw new Error(`unknown weights type ${spec.dtype}; export the site again with this version`);
  }
  return values;
}

function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// --- the network, as char_lstm.step ---

// One character: id -> the logits [vocab] of the next one (state.logits, overwritten by the next call).
function step(id, state) {
  const { units, outgoing } = model;
  let gates = model.firstGates.subarray(id * 4 * units[0], (id + 1) * 4 * units[0]);
  for (let k = 0; k < units.length; k++) {
    const n = units[k];
    const { c, h, both } = state[k];
    const recurrent = both.subarray(both.length - 4 * n); // h_previous @ recurrent_kernel, from the last step
    for (let j = 0; j < n; j++) {
      const input = sigmoid(gates[j] + recurrent[j]);
      const forget = sigmoid(gates[n + j] + recurrent[n + j]);
      const candidate = Math.tanh(gates[2 * n + j] + recurrent[2 * n + j]);
      const output = sigmoid(gates[3 * n + j] + recurrent[3 * n + j]);
      c[j] = forget * c[j] + input * candidate;
      h[j] = output * Math.tanh(c[j]);
    }
    multiply(h, outgoing[k], both);
    if (k + 1 < units.length) {
      gates = both.subarray(0, 4 * units[k + 1]);
      const bias = model.biases[k];
      for (let j = 0; j < gates.length; j++) gates[j] += bias[j];
    }
  }
  const logits = state.logits;
  multiply(state[units.length - 1].h, model.logitsKernel, logits);
  for (let j = 0; j < logits.length; j++) logits[j] += model.logitsBias[j];
  return logits;
}

function sigmoid(x) {
  return 1 / (1 + Math.exp(-x));
}

// out[j] = sum_i x[i] * matrix[j, i], matrix stored one row per output.
function multiply(x, matrix, out) {
  if (multiplyInWasm) {
    multiplyInWasm(x.byteOffset, matrix.byteOffset, out.byteOffset, x.length, out.length);
    return;
  }
  // Eight independent sums per row: twice as fast as one in V8, which does not vectorize.
  const n = x.length;
  const rows = out.length;
  for (let j = 0; j < rows; j++) {
    const base = j * n;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    let i = 0;
    for (; i + 7 < n; i += 8) {
      const b = base + i;
      s0 += x[i] * matrix[b];
      s1 += x[i + 1] * matrix[b + 1];
      s2 += x[i + 2] * matrix[b + 2];
      s3 += x[i + 3] * matrix[b + 3];
      s4 += x[i + 4] * matrix[b + 4];
      s5 += x[i + 5] * matrix[b + 5];
      s6 += x[i + 6] * matrix[b + 6];
      s7 += x[i + 7] * matrix[b + 7];
    }
    for (; i < n; i++) s0 += x[i] * matrix[base + i];
    out[j] = s0 + s1 + (s2 + s3) + (s4 + s5 + (s6 + s7));
  }
}

// Reads the seed ids from the empty state (h = c = 0); returns the logits after the last one (sampling.prime).
function prime(ids, state) {
  for (const { c, h, both } of state) {
    c.fill(0);
    h.fill(0);
    both.fill(0);
  }
  let logits = null;
  for (const id of ids) logits = step(id, state);
  return logits;
}

function softmax(logits) {
  const largest = Math.max(...logits);
  const exps = Float64Array.from(logits, (x) => Math.exp(x - largest));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((x) => x / total);
}

// --- choosing the next character, as sampling.make_next_id_fn: temperature, then top-k, then top-p ---

const NEVER = -1e9; // added to the unknown id's logit (sampling.sample_ids): it is never written

function nextId(logits, settings, seed, position) {
  const x = model.scratch;
  for (let j = 0; j < x.length; j++) x[j] = logits[j];
  x[0] += NEVER;
  if (settings.temperature === 0) return argmax(x);
  for (let j = 0; j < x.length; j++) x[j] /= settings.temperature;
  if (settings.topK > 0 && settings.topK < x.length) keepTopK(x, settings.topK);
  if (settings.topP < 1) keepTopP(x, settings.topP);
  // Gumbel-max over noise hashed from (seed, position), as sampling.sample and uniform_noise: the same seed
  // writes the same text, and the noise is the very numbers the Python generator draws.
  const key = mix((position + mix((seed + GOLDEN) >>> 0)) >>> 0); // the stateless seed (seed, position)
  let best = -Infinity;
  let bestId = 0;
  for (let j = 0; j < x.length; j++) {
    const bits = mix((Math.imul(j, GOLDEN) + key) >>> 0);
    const uniform = ((bits >>> 8) + 0.5) * 2 ** -24;
    const value = x[j] - Math.log(-Math.log(uniform));
    if (value > best) {
      best = value;
      bestId = j;
    }
  }
  return bestId;
}

function argmax(x) {
  let bestId = 0;
  for (let j = 1; j < x.length; j++) if (x[j] > x[bestId]) bestId = j;
  return bestId;
}

function keepTopK(x, k) {
  const order = model.order;
  order.set(x);
  order.sort();
  const kthLargest = order[order.length - k];
  for (let j = 0; j < x.length; j++) if (x[j] < kthLargest) x[j] = -Infinity;
}

function keepTopP(x, p) {
  // The most likely ids whose probabilities first add up to p; the most likely one always stays.
  const order = model.order;
  order.set(x);
  order.sort().reverse();
  const largest = order[0];
  let total = 0;
  for (let j = 0; j < order.length; j++) total += Math.exp(order[j] - largest);
  let before = 0;
  let smallestKept = order[0];
  for (let j = 0; j < order.length && before < p; j++) {
    smallestKept = order[j];
    before += Math.exp(order[j] - largest) / total;
  }
  for (let j = 0; j < x.length; j++) if (x[j] < smallestKept) x[j] = -Infinity;
}

const GOLDEN = 0x9e3779b9;

// MurmurHash3's 32-bit finalizer on unsigned 32-bit integers (sampling._mix).
function mix(x) {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

// --- the loop: characters go to the page as they are sampled ---

const SLICE_MS = 20; // between slices the worker reads its messages, so Stop takes effect at once
// Characters sampled within this time go out in one message: one each at the speed of a large model, a few at a
// time from a small fast one, whose thousands of messages a second would otherwise keep the page's thread busy.
const POST_MS = 2;
// Text messages the page may have waiting, not yet shown: beyond this the worker waits for the page. A page slower to
// draw than the model is to sample (a long text, a slow machine) would otherwise queue seconds of messages, and a
// Stop, or the last characters, would wait behind them.
const MAX_UNSEEN = 16;

async function generate({ job, ids, length, temperature, topK, topP, seed }) {
  const mine = { job, stopped: false, unseen: 0, wake: null };
  running = mine;
  const post = (text) => {
    self.postMessage({ type: "text", job, text });
    mine.unseen += 1;
  };
  const settings = { temperature, topK, topP };
  const state = model.generationState;
  let logits = prime(ids, state);
  const start = performance.now();
  let position = 0;
  while (position < length && !mine.stopped) {
    const sliceEnd = performance.now() + SLICE_MS;
    let text = "";
    let posted = performance.now();
    do {
      const id = nextId(logits, settings, seed >>> 0, position);
      text += model.chars[id];
      position += 1;
      if (position < length) logits = step(id, state);
      const now = performance.now();
      if (now - posted >= POST_MS) {
        post(text);
        text = "";
        posted = now;
      }
    } while (position < length && performance.now() < sliceEnd && mine.unseen < MAX_UNSEEN);
    if (text) post(text);
    await readMessages();
    while (mine.unseen >= MAX_UNSEEN && !mine.stopped) await new Promise((resolve) => (mine.wake = resolve));
  }
  if (running === mine) running = null;
  self.postMessage({ type: "done", job, chars: position, seconds: (performance.now() - start) / 1000, stopped: mine.stopped });
}

// Resumes a generation waiting for the page (it saw a text, or Stop was pressed).
function wakeUp(run) {
  if (run.wake) run.wake();
  run.wake = null;
}

// Resolves after the messages already waiting (a Stop) are handled; unlike setTimeout, never delayed by clamping.
function readMessages() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}
