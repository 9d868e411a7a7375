// The page: reads model.json, checks the settings and the seed text as generate.py does, and shows the
// characters worker.js sends as they are sampled. window.charbook is what tests and bench/web.py call.
"use strict";

const element = (id) => document.getElementById(id);
let worker = null;
let manifest = null;
let idOf = null; // character -> id
let job = 0;
let generated = null; // the text node the running job writes into
const answers = new Map(); // probability requests waiting for the worker, by number
let requests = 0;

window.charbook = {
  ready: null, // a promise: the model is loaded
  runtime: null, // what runs the matrix products: "WebAssembly SIMD", or "JavaScript" (also with ?runtime=js)
  lastRun: null, // {chars, seconds, stopped} of the last generation
  firstCharSeconds: null, // from navigation start to the first character shown
  probabilities, // (prefix) -> next-character probabilities [vocab], as the Python model's softmax
};

window.charbook.ready = Promise.resolve()
  .then(() => {
    if (location.protocol === "file:") {
      throw new Error("browsers run this page only from a web server, not opened as a file: serve its folder, e.g. python3 -m http.server -d FOLDER, then open http://localhost:8000");
    }
    worker = new Worker("worker.js");
    return fetch("model.json");
  })
  .then((response) => {
    if (!response.ok) throw new Error(`cannot load model.json: the server answered ${response.status}`);
    return response.json();
  })
  .then((loaded) => {
    manifest = loaded;
    idOf = new Map(manifest.vocabulary.chars.map((c, i) => [c, i + 1]));
    showFacts(manifest.facts);
    fillDefaults(manifest.defaults);
    return new Promise((resolve, reject) => {
      worker.onmessage = (event) => {
        if (event.data.type === "ready") resolve(event.data.runtime);
        else if (event.data.type === "error") reject(new Error(event.data.message));
      };
      worker.postMessage({ type: "load", manifest, runtime: new URLSearchParams(location.search).get("runtime") });
    });
  })
  .then((runtime) => {
    window.charbook.runtime = runtime;
    worker.onmessage = onWorkerMessage;
    element("generate").disabled = false;
    say(`Ready (${runtime}).`);
  })
  .catch((error) => {
    say(`error: ${error.message}`, true);
    throw error;
  });

function showFacts(facts) {
  const rows = [
    ["Trained on", facts.corpus],
    ["Training steps", facts.steps.toLocaleString("en")],
    ["Validation", facts.validation_bits_per_char === null ? "not measured" : `${facts.validation_bits_per_char.toFixed(3)} bits/char`],
    ["Model", facts.model],
    ["Weights", facts.weights],
  ];
  const list = element("facts");
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }
}

function fillDefaults(defaults) {
  for (const [name, value] of Object.entries(defaults)) element(name).value = value;
}

function say(text, isError = false) {
  const status = element("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

// The seed text as the model reads it, as ids; or the message generate.py gives for it.
function encodeSeed(text) {
  if (manifest.lowercase) text = text.toLowerCase();
  const chars = Array.from(text); // by code point, as Python counts characters
  if (chars.length === 0) return { error: "the seed text is empty; give at least one character, e.g. 'The '" };
  const unknown = [...new Set(chars.filter((c) => !idOf.has(c)))];
  if (unknown.length) {
    const listed = unknown.map((c) => JSON.stringify(c).replace(/^"|"$/g, "'")).join(", ");
    return { error: `the seed text has characters the model never saw in training: ${listed}; leave them out` };
  }
  return { text, ids: chars.map((c) => idOf.get(c)) };
}

// The settings, checked against the ranges config.py gives them; or the message for the first one out of range.
function readSettings() {
  const number = (name) => Number(element(name).value);
  const settings = { length: number("length"), temperature: number("temperature"), topK: number("top_k"), topP: number("top_p"), seed: number("seed") };
  const problems = [
    [Number.isInteger(settings.length) && settings.length >= 1 && settings.length <= 100000, "length must be a whole number from 1 to 100,000"],
    [settings.temperature >= 0 && settings.temperature <= 100, "temperature must be 0 (greedy) or positive, at most 100"],
    [Number.isInteger(settings.topK) && settings.topK >= 0, "top-k must be a whole number, 0 for all characters"],
    [settings.topP > 0 && settings.topP <= 1, "top-p must be above 0 and at most 1"],
    [Number.isInteger(settings.seed) && settings.seed >= 0 && settings.seed < 2 ** 31, "seed must be a whole number from 0 to 2147483647"],
  ];
  const problem = problems.find(([ok]) => !ok);
  return problem ? { error: problem[1] } : settings;
}

function start() {
  const seed = encodeSeed(element("seed_text").value);
  const settings = readSettings();
  const error = seed.error || settings.error;
  if (error) {
    say(`error: ${error}`, true);
    return;
  }
  job += 1;
  const output = element("output");
  output.textContent = "";
  const seedSpan = document.createElement("span");
  seedSpan.className = "seed";
  seedSpan.textContent = seed.text;
  generated = document.createTextNode("");
  output.append(seedSpan, generated);
  element("generate").disabled = true;
  element("stop").disabled = false;
  say("Generating...");
  worker.postMessage({ type: "generate", job, ids: seed.ids, ...settings });
}

function onWorkerMessage(event) {
  const message = event.data;
  if (message.type === "probabilities") {
    answers.get(message.request)(message.probabilities);
    answers.delete(message.request);
    return;
  }
  if (message.job !== job) return;
  if (message.type === "text") {
    generated.appendData(message.text);
    worker.postMessage({ type: "shown", job }); // the worker runs only so far ahead of what the page has shown
    if (window.charbook.firstCharSeconds === null) window.charbook.firstCharSeconds = performance.now() / 1000;
  } else if (message.type === "done") {
    element("generate").disabled = false;
    element("stop").disabled = true;
    const speed = message.seconds > 0 ? `, ${Math.round(message.chars / message.seconds).toLocaleString("en")} characters/s` : "";
    say(`${message.stopped ? "Stopped" : "Done"}: ${message.chars.toLocaleString("en")} characters${speed}.`);
    window.charbook.lastRun = { chars: message.chars, seconds: message.seconds, stopped: message.stopped };
  }
}

function probabilities(prefix) {
  return window.charbook.ready.then(() => {
    const seed = encodeSeed(prefix);
    if (seed.error) throw new Error(seed.error);
    const request = ++requests;
    return new Promise((resolve) => {
      answers.set(request, resolve);
      worker.postMessage({ type: "probabilities", request, ids: seed.ids });
    });
  });
}

element("generate").addEventListener("click", start);
element("stop").addEventListener("click", () => worker.postMessage({ type: "stop", job }));
element("seed_text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !element("generate").disabled) start();
});
