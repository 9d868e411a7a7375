"""What each runtime gets installed (TPU, GPU, CPU; with and without TensorFlow), decided without TensorFlow.

TPU chips in fake device trees are tested in test_distribute.py, through distribute, which re-exports them."""

import subprocess
import sys

import hardware
from conftest import PROJECT_ROOT

PIP = ["python3", "-m", "pip", "install", "--quiet"]
LOCK = str(PROJECT_ROOT / "requirements-lock.txt")
EXTRAS = ["tensorflow-datasets==4.9.10", "tensorflow-metadata==1.17.3", "importlib-resources==6.5.2"]  # as requirements-lock.txt pins them


def commands(accelerator, *installed):
    return hardware.make_install_commands(accelerator, installed=set(installed), python="python3")


def test_a_colab_tpu_runtime_without_tensorflow_gets_tensorflow_tpu_with_its_libtpu():
    assert commands("tpu") == [
        PIP + ["tensorflow-tpu==2.20.0", *EXTRAS, "--find-links", "https://storage.googleapis.com/libtpu-tf-releases/index.html"]
    ]


def test_a_tpu_with_plain_tensorflow_has_it_replaced_by_the_tpu_build():
    (uninstall, install) = commands("tpu", "tensorflow", "tensorflow-datasets", "tensorflow-metadata", "importlib-resources")
    assert uninstall == ["python3", "-m", "pip", "uninstall", "--quiet", "--yes", "tensorflow"]
    assert install[len(PIP) :] == ["tensorflow-tpu==2.20.0", "--find-links", hardware.LIBTPU_INDEX]


def test_a_tpu_with_tensorflow_tpu_installed_already_gets_nothing():
    assert commands("tpu", "tensorflow-tpu", "tensorflow-datasets", "tensorflow-metadata", "importlib-resources") == []


def test_colabs_gpu_and_cpu_runtimes_keep_their_own_tensorflow():
    assert commands("gpu", "tensorflow", "tensorflow-datasets", "tensorflow-metadata", "importlib-resources") == []
    assert commands("cpu", "tensorflow", "tensorflow-datasets", "tensorflow-metadata", "importlib-resources") == []
    assert commands("gpu", "tensorflow") == [PIP + EXTRAS]  # only what charbook needs besides


def test_a_runtime_without_tensorflow_gets_the_pinned_versions_with_cuda_on_a_gpu():
    assert commands("cpu") == [PIP + ["--constraint", LOCK, str(PROJECT_ROOT)]]
    assert commands("gpu") == [PIP + ["--constraint", LOCK, str(PROJECT_ROOT), "tensorflow[and-cuda]==2.21.0"]]


def test_this_venv_has_what_the_cpu_needs():
    assert hardware.make_install_commands("cpu") == []


def test_importing_hardware_or_finding_the_accelerator_imports_no_tensorflow():
    check = "import sys, hardware; hardware.find_accelerator(); assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    subprocess.run([sys.executable, "-c", check], cwd=PROJECT_ROOT, check=True, timeout=60)


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    def cpuinfo(flags):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\nflags\t\t: fpu sse2 {flags}\n")
        return path

    assert hardware.cpu_has_native_bfloat16(cpuinfo("avx512f avx512_bf16 avx512_vnni"))
    assert hardware.cpu_has_native_bfloat16(cpuinfo("amx_bf16 amx_tile amx_int8"))
    assert not hardware.cpu_has_native_bfloat16(cpuinfo("avx512f avx2 avx512_vnni"))
    assert not hardware.cpu_has_native_bfloat16(tmp_path / "missing")  # macOS, Windows: no /proc/cpuinfo
    assert hardware.cpu_flags(cpuinfo("avx512f avx512_bf16")) == {"fpu", "sse2", "avx512f", "avx512_bf16"}
    assert hardware.cpu_flags(tmp_path / "missing") == set()
