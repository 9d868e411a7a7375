"""notebooks/train_colab.ipynb, run cell by cell with tiny settings on the CPU, so that it cannot rot."""

import json
import re
import zipfile

from conftest import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "train_colab.ipynb"


def code_cells() -> list[str]:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def test_the_colab_notebook_runs_from_settings_to_download(gutenberg_mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(PROJECT_ROOT)  # as if cloned already: the install cell skips the clone
    monkeypatch.setenv("GUTENBERG_MIRROR", str(gutenberg_mirror))
    monkeypatch.setenv("CHARBOOK_CACHE_DIR", str(tmp_path / "cache"))
    settings, *rest = code_cells()
    assert "REPO_URL" in settings and "SAVE_TO_DRIVE" in settings
    namespace = {}
    exec(settings, namespace)  # noqa: S102  (the notebook's own code)
    namespace.update(
        BOOKS="11",
        STEPS=30,
        EXPORT_DIR=str(tmp_path / "colab"),
        EXTRA_FLAGS=["--embedding_dim=8", "--rnn_units=16", "--seq_len=20", "--batch_size=8", "--log_every=10"],
    )
    for cell in rest:
        exec(cell, namespace)  # noqa: S102

    output = capsys.readouterr().out
    assert "CPU only" in output
    assert "step 30/30" in output and "exported to" in output
    assert namespace["ACCELERATOR"] == "cpu" and "$ " not in output  # this venv has TensorFlow: nothing installed
    generated = output.split("exported to")[-1]
    assert "It was " in generated
    with zipfile.ZipFile(tmp_path / "colab.zip") as archive:
        assert {"config.json", "vocab.json", "model.weights.h5"} <= set(archive.namelist())


def test_the_kernel_never_imports_tensorflow_so_the_training_process_can_hold_the_tpu():
    # On a TPU VM one process at a time may hold the TPU, and Colab's TPU runtimes start without TensorFlow.
    imports = re.compile(r"^\s*(import|from)\s+(tensorflow|keras|api|distribute|training|generate)\b", re.MULTILINE)
    assert [cell for cell in code_cells() if imports.search(cell)] == []
