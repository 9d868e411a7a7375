"""evaluate.py from the command line, on an untrained export: its score is about log2 of the vocabulary."""

import math
import re
import subprocess
import sys

import export
from config import Config
from conftest import PROJECT_ROOT
from models.char_lstm import build_model
from pipeline.text import clean_book_text
from pipeline.vocab import build_vocabulary


def test_bits_per_character_of_a_held_out_book(gutenberg_mirror, tmp_path):
    vocabulary = build_vocabulary(["abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'\"-\n"])
    config = Config(embedding_dim=4, rnn_units=8, seq_len=50)
    model = build_model(config.model, vocabulary.size)
    export.write_export(tmp_path / "export", model=model, config=config, vocabulary=vocabulary, steps_completed=0)

    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "evaluate.py"),
            f"--export_dir={tmp_path / 'export'}",
            "--books=31469",
            f"--gutenberg_mirror={gutenberg_mirror}",
            f"--cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    book_line, all_line = result.stdout.splitlines()
    assert book_line.startswith("Gutenberg book 31469: ")
    assert "characters unknown to the model" in book_line  # the book has digits and curly quotes
    bits_per_char = float(re.search(r"all: ([\d.]+) bits/char", all_line).group(1))
    assert abs(bits_per_char - math.log2(vocabulary.size)) < 0.5  # random weights: about uniform
    book_text = clean_book_text((gutenberg_mirror / "cache/epub/31469/pg31469.txt").read_bytes(), name="31469")
    scored = int(re.search(r"([\d,]+) characters$", all_line).group(1).replace(",", ""))
    assert scored == len(book_text) // 51 * 50  # whole 51-character windows; the targets are scored
