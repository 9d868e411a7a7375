"""Which accelerator this machine has and what TensorFlow it needs, found without importing TensorFlow.

Without TensorFlow on purpose: on a TPU VM only one process may hold the TPU, so a notebook kernel that
imported TensorFlow to look for devices would keep the TPU from the training process it starts; and on
Colab's TPU runtimes there is no TensorFlow to import until this module's install commands have run.
"""

import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys

# PCI ids of Google's TPU chips, as JAX (jax/_src/hardware_utils.py) and libtpu's tpu-info
# (tpu_info/device.py) list them. The device id matters, not just Google's vendor id: a Google network
# card (gVNIC, 0x0042) handed to DPDK sits behind /dev/vfio too.
GOOGLE_PCI_VENDOR_ID = "0x1ae0"
TPU_PCI_DEVICE_IDS = {
    "0x0027": "v2 or v3",
    "0x0056": "no public name",
    "0x005e": "v4",
    "0x0062": "v5p",
    "0x0063": "v5e",
    "0x006f": "v6e",
    "0x0076": "TPU7x",
}

# TensorFlow's TPU build: 2.20.0 is the newest tensorflow-tpu (there is none of 2.21). It brings its
# libtpu; the index is where the TensorFlow team publishes the libtpu builds made for tensorflow-tpu.
TPU_TENSORFLOW = "tensorflow-tpu==2.20.0"
LIBTPU_INDEX = "https://storage.googleapis.com/libtpu-tf-releases/index.html"
# What charbook needs beyond TensorFlow and the tensorboard, numpy and absl-py that TensorFlow brings.
_NEEDED_BESIDES_TENSORFLOW = ("tensorflow-datasets", "tensorflow-metadata", "importlib-resources")
_CHECKOUT = pathlib.Path(__file__).resolve().parent


def find_accelerator(root: str | os.PathLike = "/") -> str:
    """'tpu', 'gpu' or 'cpu': the fastest hardware this machine has for TensorFlow, a TPU first."""
    if find_tpu_devices(root):
        return "tpu"
    return "gpu" if find_gpus() else "cpu"


def find_gpus() -> list[str]:
    """NVIDIA's one-line descriptions of this machine's GPUs, e.g. ['GPU 0: Tesla T4 (UUID: GPU-...)']; [] without any.

    Asks `nvidia-smi -L`, which the NVIDIA driver installs (Colab's GPU runtimes have it): without the
    driver TensorFlow could not use a GPU either.
    """
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):  # no NVIDIA driver, or one that hangs
        return []
    if listing.returncode != 0:
        return []
    return [line.strip() for line in listing.stdout.splitlines() if line.startswith("GPU ")]


def tpu_is_attached(root: str | os.PathLike = "/") -> bool:
    """True on a TPU VM (Colab's TPU runtimes, Cloud TPU VMs of every generation): its TPU chips are devices of this machine."""
    return bool(find_tpu_devices(root))


def cpu_has_native_bfloat16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True when this machine's CPU multiplies bfloat16 in hardware: AMX (amx_bf16, Sapphire Rapids on) or AVX-512 BF16.

    Reads the kernel's CPU flags; False where there is no /proc/cpuinfo (macOS, Windows) or it names
    neither. Without them bfloat16 products are emulated, slower than float32.
    """
    return bool(cpu_flags(cpuinfo) & {"amx_bf16", "avx512_bf16"})


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as the kernel lists them (e.g. 'avx512_bf16'); empty where there is no /proc/cpuinfo."""
    try:
        text = pathlib.Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.partition(":")[2].split()}


def find_tpu_devices(root: str | os.PathLike = "/") -> list[str]:
    """The device files of this machine's TPU chips, e.g. ['/dev/vfio/0', '/dev/vfio/1']; [] without a TPU.

    TPU v2 to v4 chips are /dev/accel0, /dev/accel1, ... (the DRM accelerators of other makers, e.g. an
    Intel NPU, are /dev/accel/accel0 instead). From v5e on, a chip is handed to libtpu through VFIO as
    /dev/vfio/N, where N is the IOMMU group of the chip's PCI device: a TPU when
    /sys/kernel/iommu_groups/N/devices/*/vendor and device hold Google's vendor id and a TPU's device id
    (GPUs passed through VFIO are not TPUs). `root` stands for / (tests build a device tree under it).
    """
    root = pathlib.Path(root)
    accel = [path.name for path in (root / "dev").glob("accel*") if re.fullmatch(r"accel[0-9]+", path.name)]
    groups = [path.name for path in (root / "dev" / "vfio").glob("*") if re.fullmatch(r"[0-9]+", path.name)]
    return [f"/dev/{name}" for name in sorted(accel, key=lambda name: int(name[len("accel") :]))] + [
        f"/dev/vfio/{group}" for group in sorted(groups, key=int) if _iommu_group_holds_a_tpu(root, group)
    ]


def make_install_commands(
    accelerator: str, *, installed: set[str] | None = None, python: str = sys.executable
) -> list[list[str]]:
    """The pip commands that give this runtime a TensorFlow for `accelerator` and what else charbook needs; [] when it has them.

    TPU: TensorFlow's TPU build with its libtpu (Colab's TPU runtimes come without TensorFlow), replacing
    a plain `tensorflow`, which cannot drive a TPU. GPU and CPU: the runtime's own TensorFlow when it has
    one (Colab's matches its CUDA driver), else the versions requirements-lock.txt pins. `installed` names
    the packages (distributions) installed, for tests; by default this Python's.
    """
    if installed is None:
        installed = _find_installed()
    pip = [python, "-m", "pip", "install", "--quiet"]
    missing = [_pinned(package) for package in _NEEDED_BESIDES_TENSORFLOW if package not in installed]
    if accelerator == "tpu":
        if "tensorflow-tpu" in installed:
            return [pip + missing] if missing else []
        replace = [[python, "-m", "pip", "uninstall", "--quiet", "--yes", "tensorflow"]] if "tensorflow" in installed else []
        return replace + [pip + [TPU_TENSORFLOW, *missing, "--find-links", LIBTPU_INDEX]]
    if accelerator not in ("gpu", "cpu"):
        raise ValueError(f"accelerator must be 'tpu', 'gpu' or 'cpu', not {accelerator!r}")
    if "tensorflow" in installed or "tensorflow-tpu" in installed:
        return [pip + missing] if missing else []
    # The project's dependencies at the locked versions; on a GPU with the CUDA libraries TensorFlow was built for.
    cuda = [f"tensorflow[and-cuda]=={_locked_version('tensorflow')}"] if accelerator == "gpu" else []
    return [pip + ["--constraint", str(_CHECKOUT / "requirements-lock.txt"), str(_CHECKOUT), *cuda]]


def _find_installed() -> set[str]:
    """Which of the packages that decide the install commands this Python has, read from their metadata, imported not."""
    installed = set()
    for package in ("tensorflow", "tensorflow-tpu", *_NEEDED_BESIDES_TENSORFLOW):
        try:
            importlib.metadata.version(package)
            installed.add(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return installed


def _locked_version(package: str) -> str:
    for line in (_CHECKOUT / "requirements-lock.txt").read_text(encoding="utf-8").splitlines():
        name, _, version = line.partition("==")
        if re.sub(r"[-_.]+", "-", name.strip().lower()) == package:  # importlib_resources is importlib-resources
            return version.split(";")[0].strip()
    raise LookupError(f"{package} is not pinned in requirements-lock.txt")


def _pinned(package: str) -> str:
    return f"{package}=={_locked_version(package)}"


def _iommu_group_holds_a_tpu(root: pathlib.Path, group: str) -> bool:
    for device in (root / "sys" / "kernel" / "iommu_groups" / group / "devices").glob("*"):
        try:
            vendor = (device / "vendor").read_text().strip()
            device_id = (device / "device").read_text().strip()
        except OSError:  # a device without PCI ids
            continue
        if vendor == GOOGLE_PCI_VENDOR_ID and device_id in TPU_PCI_DEVICE_IDS:
            return True
    return False
