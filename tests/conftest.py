"""Shared fixtures: the real corpora beside the project, and a shrunken Config for tiny, fast runs."""

import os
import pathlib

import pytest

import cli  # noqa: F401  (imports TensorFlow without the C++ start-up chatter)
from config import Config

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPORA_DIR = pathlib.Path(os.environ.get("CHARBOOK_CORPORA", PROJECT_ROOT.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def corpora_dir() -> pathlib.Path:
    if not (CORPORA_DIR / "gutenberg" / "cache" / "epub").is_dir():
        pytest.fail(f"the test corpora are not at {CORPORA_DIR}; set CHARBOOK_CORPORA to the shared/corpora directory")
    return CORPORA_DIR


@pytest.fixture(scope="session")
def gutenberg_mirror(corpora_dir) -> pathlib.Path:
    """A local directory laid out like gutenberg.org: cache/epub/<id>/pg<id>.txt."""
    return corpora_dir / "gutenberg"


@pytest.fixture
def tiny_config(gutenberg_mirror, tmp_path) -> Config:
    """The real Config shrunk to a model and batches that train in seconds on one book (Alice)."""
    return Config(
        books=(11,),
        gutenberg_mirror=str(gutenberg_mirror),
        cache_dir=str(tmp_path / "cache"),
        seq_len=32,
        batch_size=16,
        shuffle_buffer=256,
        embedding_dim=8,
        rnn_units=16,
        export_dir=str(tmp_path / "export"),
    )
