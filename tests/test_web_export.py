"""The web page: the folder export_web.py writes, then the page itself in headless Chromium, served on 127.0.0.1."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import api
import export
import web_browser
import web_export
from conftest import PROJECT_ROOT
from config import Config
from errors import UserError
from models.char_lstm import build_model
from pipeline.vocab import build_vocabulary

TEXT = "It was the best of times, it was the worst of times; café 🙂\n"
CONFIG = Config(embedding_dim=8, rnn_units=16, books=(11,), seed_text="It was ", length=300, temperature=0.8, seed=3)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> export.Export:
    """A tiny model with weights large enough that its next-character probabilities differ a lot."""
    vocabulary = build_vocabulary([TEXT])
    model = build_model(CONFIG.model, vocabulary.size)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.6, size=w.shape).astype(np.float32) for w in model.get_weights()])
    directory = tmp_path_factory.mktemp("web") / "export"
    export.write_export(directory, model=model, config=CONFIG, vocabulary=vocabulary, steps_completed=12, validation_bits_per_char=3.5)
    return export.load_export(directory)


@pytest.fixture(scope="module")
def site(exported, tmp_path_factory):
    return web_export.write_site(exported, tmp_path_factory.mktemp("web") / "site")


@pytest.fixture(scope="module")
def python_generator(exported):
    return api.TextGenerator(exported)


def python_probabilities(generator, prefix: str) -> np.ndarray:
    ids = generator.export.vocabulary.encode(prefix).numpy()[None, :]
    logits = generator.model(ids, training=False)[0, -1].numpy().astype(np.float64)
    exps = np.exp(logits - logits.max())
    return exps / exps.sum()


# --- the folder ---


def test_site_holds_the_page_its_code_the_weights_and_the_vocabulary(site, exported):
    manifest = json.loads((site / "model.json").read_text(encoding="utf-8"))
    weights_file = manifest["weights"]["file"]
    assert sorted(p.name for p in site.iterdir()) == sorted(["index.html", "model.json", "multiply.wasm", "page.js", "worker.js", weights_file])
    assert re.fullmatch(r"weights-[0-9a-f]{16}\.bin", weights_file)
    assert (site / weights_file).stat().st_size == manifest["weights"]["bytes"]
    assert manifest["vocabulary"]["chars"] == list(exported.vocabulary.chars)
    assert manifest["units"] == [16, 16]
    assert manifest["facts"] == {
        "corpus": "Project Gutenberg ebook 11",
        "steps": 12,
        "validation_bits_per_char": 3.5,
        "model": f"embedding 8, 2 LSTM layers of 16 units, {len(exported.vocabulary.chars)} characters",
        "weights": "float32, 0.0 MB",
    }
    assert manifest["defaults"] == {"seed_text": "It was ", "length": 300, "temperature": 0.8, "top_k": 0, "top_p": 1.0, "seed": 3}


def test_site_fetches_nothing_from_outside_its_folder(site):
    for path in site.iterdir():
        if path.suffix in (".html", ".js", ".json"):
            text = path.read_text(encoding="utf-8")
            # No address but the one the file:// message tells users to open.
            assert not re.search(r"https?:(?!//localhost:8000\b)|(src|href)=[\"']?//|@import|importScripts", text), path.name
    html = (site / "index.html").read_text(encoding="utf-8")
    for reference in re.findall(r"(?:src|href)=\"([^\"]+)\"", html):
        assert (site / reference).is_file(), reference
    for script in ("page.js", "worker.js"):
        for fetched in re.findall(r"(?:fetch|fetchBytes|Worker)\(\"([^\"]+)\"", (site / script).read_text(encoding="utf-8")):
            assert (site / fetched).is_file(), fetched


def test_weights_file_holds_the_step_weights_as_laid_out_in_the_manifest(site, exported):
    manifest = json.loads((site / "model.json").read_text(encoding="utf-8"))
    data = (site / manifest["weights"]["file"]).read_bytes()
    for tensor in web_export.site_tensors(exported):
        entry = manifest["weights"]["tensors"][tensor.name]
        stored = np.frombuffer(data, "<f4", count=int(np.prod(entry["shape"])), offset=entry["offset"]).reshape(entry["shape"])
        np.testing.assert_array_equal(stored, tensor.data)
        assert entry["offset"] % 16 == 0


def test_smaller_weights_stay_close_to_float32(exported):
    for tensor in web_export.site_tensors(exported):
        for dtype, tolerance in (("float16", 1e-3), ("int8", 1 / 127)):
            small = web_export.shrink(tensor, dtype)
            largest = np.abs(tensor.data).max()
            assert np.abs(small.values() - tensor.data).max() <= tolerance * largest, (tensor.name, dtype)
            assert small.data.dtype == (np.float32 if tensor.data.ndim == 1 else np.dtype(dtype))


def test_browser_model_computes_what_the_page_does_for_scoring_smaller_weights(exported, python_generator):
    ids = exported.vocabulary.encode(TEXT).numpy()[None, :]
    expected = python_generator.model(ids, training=False).numpy()
    np.testing.assert_allclose(web_export.browser_model(exported, weights_dtype="float32")(ids).numpy(), expected, atol=1e-5)
    int8 = web_export.browser_model(exported, weights_dtype="int8")(ids).numpy()
    assert 1e-4 < np.abs(int8 - expected).max() < 0.1 * np.abs(expected).max()


def test_a_second_write_replaces_the_weights_file_and_keeps_other_files(site, exported):
    (site / "notes.txt").write_text("mine")
    before = json.loads((site / "model.json").read_text())["weights"]["file"]
    web_export.write_site(exported, site, weights_dtype="float16")
    after = json.loads((site / "model.json").read_text())["weights"]
    assert after["dtype"] == "float16" and after["file"] != before
    assert not (site / before).exists() and (site / after["file"]).is_file() and (site / "notes.txt").read_text() == "mine"
    web_export.write_site(exported, site)  # back to float32 for the browser tests
    (site / "notes.txt").unlink()


def test_out_inside_the_export_or_a_file_is_refused(exported, tmp_path):
    with pytest.raises(UserError, match="inside the export .* replaces whole; choose a folder outside it"):
        web_export.write_site(exported, exported.directory / "site")
    (tmp_path / "site").write_text("a file")
    with pytest.raises(UserError, match="is a file; give a folder"):
        web_export.write_site(exported, tmp_path / "site")


def test_export_web_writes_the_site_and_names_a_damaged_export(exported, tmp_path):
    def export_web(export_dir):
        return subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "export_web.py"), f"--export_dir={export_dir}", f"--out={tmp_path / 'site'}", "--temperature=0.5"],
            capture_output=True,
            text=True,
            timeout=120,
        )

    result = export_web(exported.directory)
    assert result.returncode == 0, result.stderr
    assert f"wrote the web page to {tmp_path / 'site'}" in result.stdout
    assert json.loads((tmp_path / "site" / "model.json").read_text())["defaults"]["temperature"] == 0.5

    damaged = tmp_path / "damaged"
    subprocess.run(["cp", "-r", str(exported.directory), str(damaged)], check=True)
    weights = damaged / export.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    result = export_web(damaged)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {weights} is truncated or damaged: {weights.stat().st_size:,} bytes, expected {weights.stat().st_size + 100:,}; "
        f"{export.EXPORT_AGAIN}"
    ]


def test_without_a_browser_the_reason_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setenv("CHARBOOK_CHROMIUM", str(tmp_path / "chromium"))
    assert web_browser.find_chromium() == (
        None,
        f"no headless Chromium at {tmp_path / 'chromium'}: apt-get install chromium-headless-shell (as .ci/run does), "
        "or set CHARBOOK_CHROMIUM to a Chromium binary",
    )


# --- the page, in headless Chromium ---


@pytest.fixture(scope="module")
def open_page(site):
    """A function: the page at a query string ("", "?runtime=js"), loaded; no page may throw meanwhile."""
    executable, why_not = web_browser.find_chromium()
    if executable is None:
        pytest.skip(f"no browser to test the web page in: {why_not}")
    errors = []
    with web_browser.serve_folder(site) as url, web_browser.launch_chromium(executable) as browser:

        def open_page(query=""):
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + query)
            page.evaluate("charbook.ready")
            return page

        open_page.browser = browser
        yield open_page
    assert errors == []


@pytest.fixture(scope="module")
def page(open_page):
    return open_page()


def generate(page, *, seed_text="It was ", length=200, seed=3, temperature=0.8, top_k=0, top_p=1.0) -> str:
    """Fills in the page's settings, clicks Generate and waits for the end; the text shown."""
    for name, value in dict(seed_text=seed_text, length=length, seed=seed, temperature=temperature, top_k=top_k, top_p=top_p).items():
        page.fill(f"#{name}", str(value))
    page.evaluate("charbook.lastRun = null")
    page.click("#generate")
    page.wait_for_function("charbook.lastRun !== null")
    return page.text_content("#output")


def test_page_shows_the_model_facts_and_the_export_settings(page):
    facts = page.inner_text("#facts")
    assert "Project Gutenberg ebook 11" in facts and "3.500 bits/char" in facts and "12" in facts
    assert page.input_value("#seed_text") == "It was " and page.input_value("#temperature") == "0.8"


@pytest.mark.parametrize("prefix", ["I", "It was the best of ti", "café 🙂\nit"])
def test_browser_probabilities_match_the_python_model(page, open_page, python_generator, prefix):
    expected = python_probabilities(python_generator, prefix)
    assert expected.max() > 3 * expected.min()  # weights that make the characters differ
    for runtime, tab in (("WebAssembly SIMD", page), ("JavaScript", open_page("?runtime=js"))):
        assert tab.evaluate("charbook.runtime") == runtime
        in_browser = np.array(tab.evaluate("prefix => charbook.probabilities(prefix)", prefix))
        assert in_browser.shape == expected.shape
        np.testing.assert_allclose(in_browser, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("weights_dtype", ["float16", "int8"])
def test_smaller_weights_compute_in_the_browser_what_python_scores(open_page, exported, tmp_path, weights_dtype):
    prefix = "It was the best of ti"
    ids = exported.vocabulary.encode(prefix).numpy()[None, :]
    logits = web_export.browser_model(exported, weights_dtype=weights_dtype)(ids)[0, -1].numpy().astype(np.float64)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    web_export.write_site(exported, tmp_path, weights_dtype=weights_dtype)
    with web_browser.serve_folder(tmp_path) as url:
        tab = open_page.browser.new_page()
        tab.goto(url)
        in_browser = np.array(tab.evaluate("prefix => charbook.probabilities(prefix)", prefix))
        tab.close()
    np.testing.assert_allclose(in_browser, expected, atol=1e-4, rtol=0)


def test_text_streams_into_the_page_character_by_character(page):
    # Record the output's length in characters (not UTF-16 units: the vocabulary has an emoji) at every change, and count timer ticks: the page stays responsive meanwhile.
    page.evaluate(
        """() => {
        window.lengths = []; window.ticks = 0; window.ticker = setInterval(() => window.ticks++, 5);
        new MutationObserver(() => window.lengths.push([...document.getElementById('output').textContent].length))
          .observe(document.getElementById('output'), {childList: true, characterData: true, subtree: true});
    }"""
    )
    text = generate(page, length=20000)
    lengths, ticks, run = page.evaluate("clearInterval(ticker), [lengths, ticks, charbook.lastRun]")
    seed_length = len("It was ")
    assert len(text) == seed_length + 20000
    growing = [n for n in lengths if n > seed_length]
    assert len(set(growing)) > 30 and growing[-1] == seed_length + 20000  # seen in many small pieces
    # The worker posts what it sampled every POST_MS: for this tiny model on a fast machine that is a few
    # hundred characters, so the bound follows the measured speed, not a fixed count. Its first window ran
    # up to 3.2 times the run's average speed (the page has nothing to draw yet), so the bound allows 10.
    post_ms = int(re.search(r"const POST_MS = (\d+);", (web_export.ASSETS_DIR / "worker.js").read_text())[1])
    chars_per_post = run["chars"] / run["seconds"] * post_ms / 1000
    first_piece = growing[0] - seed_length
    assert first_piece <= 10 * chars_per_post + 1 and first_piece < 20000 / 30
    assert ticks > 0


def test_same_seed_writes_the_same_text_and_the_python_generator_does_too(page, python_generator):
    first = generate(page, seed=7)
    assert generate(page, seed=7) == first
    assert generate(page, seed=8) != first
    python = python_generator.generate("It was ", length=200, temperature=0.8, seed=7)
    assert first == python  # the same noise, hashed from (seed, position), and the same network
    top = generate(page, seed=7, top_k=3, top_p=0.9)
    assert top == python_generator.generate("It was ", length=200, temperature=0.8, seed=7, top_k=3, top_p=0.9)
    assert generate(page, temperature=0) == python_generator.generate("It was ", length=200, temperature=0, seed=0)


def test_stop_ends_generation_at_once(open_page):
    page = open_page("?runtime=js")  # the slower products: 100,000 characters take seconds, time enough to press Stop
    page.fill("#length", "100000")
    page.evaluate("charbook.lastRun = null")
    page.click("#generate")
    page.wait_for_function("document.getElementById('output').textContent.length > 500")
    page.click("#stop")
    page.wait_for_function("charbook.lastRun !== null")
    run = page.evaluate("charbook.lastRun")
    shown = page.text_content("#output")
    assert run["stopped"] and run["chars"] < 100_000 and len(shown) == len("It was ") + run["chars"]
    page.wait_for_timeout(200)
    assert page.text_content("#output") == shown
    assert page.inner_text("#status").startswith("Stopped") and page.is_enabled("#generate") and not page.is_enabled("#stop")
    page.close()


def test_page_opened_as_a_file_says_to_serve_it(open_page, site):
    tab = open_page.browser.new_page()
    tab.goto((site / "index.html").as_uri())
    tab.wait_for_function("document.getElementById('status').className === 'error'")
    assert tab.inner_text("#status").startswith("error: browsers run this page only from a web server, not opened as a file")
    tab.close()


def test_bad_seed_text_names_the_unknown_characters(page):
    page.fill("#seed_text", "It was Zebra<")
    page.click("#generate")
    assert page.inner_text("#status") == (
        "error: the seed text has characters the model never saw in training: 'Z', '<'; leave them out"
    )
    page.fill("#seed_text", "")
    page.click("#generate")
    assert page.inner_text("#status").startswith("error: the seed text is empty")
    page.fill("#seed_text", "It was ")
    page.fill("#top_p", "0")
    page.click("#generate")
    assert page.inner_text("#status") == "error: top-p must be above 0 and at most 1"
    page.fill("#top_p", "1")
