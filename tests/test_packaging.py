"""Installing charbook installs its dependencies and nothing importable: it runs from its checkout."""

import subprocess
import sys
import zipfile

from conftest import PROJECT_ROOT


def test_the_wheel_holds_no_modules_only_the_projects_metadata(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(PROJECT_ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("charbook-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert names and all(name.startswith("charbook-") and ".dist-info/" in name for name in names), names
