"""books.py from the command line: what a query selects, without training."""

import subprocess
import sys

from conftest import PROJECT_ROOT
from pipeline import sources


def test_books_lists_what_a_query_selects_and_counts_it(gutenberg_mirror, tmp_path):
    sources.fetch_gutenberg_book(1342, mirror=str(gutenberg_mirror), cache_dir=tmp_path)

    def books(*args):
        command = [sys.executable, "books.py", *args, f"--gutenberg_mirror={gutenberg_mirror}", f"--cache_dir={tmp_path}"]
        return subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT)

    listed = books("author:austen", "top:3")  # the words of one query, unquoted
    assert listed.stdout == (
        "    id  downloads  cached  language  title (first author)\n"
        "  1342     75,123  yes     en        Pride and Prejudice (Austen, Jane)\n"
        "   158     11,207  no      en        Emma (Austen, Jane)\n"
        "   161      9,812  no      en        Sense and Sensibility (Austen, Jane)\n"
    )
    assert listed.returncode == 0 and listed.stderr == ""
    counted = books("--count", "lang:en,lang:fr")  # the audio book of Alice is not counted: type:Text is the default
    assert (counted.stdout, counted.returncode) == ("23\n", 0)
