"""Installing charbook installs its dependencies and nothing importable: it runs from its checkout."""

import shutil
import subprocess
import sys
import zipfile

from conftest import PROJECT_ROOT


def test_the_wheel_holds_no_modules_only_the_projects_metadata(tmp_path):
    # Built from a copy: setuptools leaves build/ and *.egg-info in the directory it builds.
    source = tmp_path / "charbook"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "exports", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("charbook-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert names and all(name.startswith("charbook-") and ".dist-info/" in name for name in names), names
