"""Which machine a result came from: every field the comparison across devices depends on.

Each field is read from the system (``/proc``, ``/sys``, ``/etc/nv_tegra_release``, NVML, the runtime
libraries); whatever this machine does not tell is recorded as ``"not available"`` with no guessing, so a
result file always has the same keys.
"""

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

NOT_AVAILABLE = "not available"

FIELDS = (
    "hostname",
    "os",
    "python",
    "cpu_model",
    "cpu_cores_logical",
    "cpu_cores_usable",
    "cpu_max_mhz",
    "memory_gb",
    "gpu_name",
    "gpu_compute_capability",
    "gpu_driver",
    "cuda",
    "tensorrt",
    "onnxruntime",
    "onnxruntime_providers",
    "torch",
    "jetson_model",
    "jetpack_l4t",
    "nvpmodel_mode",
    "jetson_clocks",
    "clocks_mhz",
)


def _read(path: Union[str, Path]) -> Optional[str]:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _command(*argv: str, timeout: float = 5.0) -> Optional[str]:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _version(*distributions: str) -> str:
    """Version of the first installed distribution among alternatives (onnxruntime, onnxruntime-gpu, ...)."""
    if sys.version_info >= (3, 8):
        from importlib import metadata  # novermin (guarded)
    else:  # JetPack 4.6 (3.6) and 3.7: the PyPI backport, a base requirement there
        import importlib_metadata as metadata
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return NOT_AVAILABLE


def cpu_fields() -> Dict[str, Any]:
    cpuinfo = _read("/proc/cpuinfo") or ""
    model = re.search(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    meminfo = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo") or "", re.MULTILINE)
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor() or NOT_AVAILABLE,
        "cpu_cores_logical": os.cpu_count() or NOT_AVAILABLE,
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else NOT_AVAILABLE,
        "cpu_max_mhz": round(int(max_khz) / 1000) if max_khz and max_khz.isdigit() else NOT_AVAILABLE,
        "memory_gb": round(int(meminfo.group(1)) / 1024**2, 1) if meminfo else NOT_AVAILABLE,
    }


def gpu_fields() -> Dict[str, Any]:
    """GPU identity from NVML (desktop) or torch.cuda; Jetson iGPUs answer through torch/TensorRT, not NVML."""
    fields: Dict[str, Any] = dict.fromkeys(("gpu_name", "gpu_compute_capability", "gpu_driver", "cuda"), NOT_AVAILABLE)
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            fields["gpu_name"] = pynvml.nvmlDeviceGetName(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            fields["gpu_compute_capability"] = f"{major}.{minor}"
            fields["gpu_driver"] = pynvml.nvmlSystemGetDriverVersion()
            cuda = pynvml.nvmlSystemGetCudaDriverVersion()
            fields["cuda"] = f"{cuda // 1000}.{cuda % 1000 // 10} (driver API)"
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            if fields["gpu_name"] == NOT_AVAILABLE:
                fields["gpu_name"] = torch.cuda.get_device_name(0)
                fields["gpu_compute_capability"] = "{}.{}".format(*torch.cuda.get_device_capability(0))
            if fields["cuda"] == NOT_AVAILABLE and torch.version.cuda:
                fields["cuda"] = f"{torch.version.cuda} (torch runtime)"
    except ImportError:
        pass
    return fields


def jetson_fields() -> Dict[str, Any]:
    """JetPack/L4T release, nvpmodel power mode, jetson_clocks state and current clocks, where readable."""
    release = _read("/etc/nv_tegra_release")
    l4t = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", release or "")
    model = _read("/proc/device-tree/model")
    nvpmodel = _command("nvpmodel", "-q")
    mode = re.search(r"NV Power Mode:\s*(.+)", nvpmodel or "")
    clocks_state = _command("jetson_clocks", "--show")
    return {
        "jetson_model": model.rstrip("\x00") if model and "jetson" in model.lower() else NOT_AVAILABLE,
        "jetpack_l4t": f"L4T R{l4t.group(1)}.{l4t.group(2)}" if l4t else NOT_AVAILABLE,
        "nvpmodel_mode": mode.group(1).strip() if mode else NOT_AVAILABLE,
        "jetson_clocks": _jetson_clocks_on(clocks_state) if clocks_state else NOT_AVAILABLE,
        "clocks_mhz": _current_clocks_mhz(),
    }


def _jetson_clocks_on(show: str) -> str:
    """jetson_clocks pins every CPU's MinFreq to its MaxFreq; ``--show`` lists both per core."""
    pairs = re.findall(r"MinFreq=(\d+) MaxFreq=(\d+) CurrentFreq", show)
    if not pairs:
        return NOT_AVAILABLE
    return "on" if all(low == high for low, high in pairs) else "off"


def _current_clocks_mhz() -> Union[Dict[str, int], str]:
    clocks: Dict[str, int] = {}
    cpu = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if cpu and cpu.isdigit():
        clocks["cpu0"] = round(int(cpu) / 1000)
    for devfreq in sorted(Path("/sys/class/devfreq").glob("*")):  # Jetson GPU (gv11b, ga10b, 57000000.gpu, ...)
        current = _read(devfreq / "cur_freq")
        if current and current.isdigit() and ("gpu" in devfreq.name or "gv11b" in devfreq.name):
            clocks["gpu"] = round(int(current) / 1e6)
    return clocks or NOT_AVAILABLE


def runtime_fields() -> Dict[str, Any]:
    providers: Union[List[str], str] = NOT_AVAILABLE
    try:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    except ImportError:
        pass
    tensorrt = _version("tensorrt", "tensorrt-cu12", "tensorrt-cu11")
    if tensorrt == NOT_AVAILABLE:  # JetPack installs TensorRT as a system package, not a pip distribution
        try:
            import tensorrt as trt

            tensorrt = str(trt.__version__)
        except ImportError:
            pass
    return {
        "tensorrt": tensorrt,
        "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
        "onnxruntime_providers": providers,
        "torch": _version("torch"),
    }


def device_fingerprint() -> Dict[str, Any]:
    """All of FIELDS, each a value or ``"not available"``."""
    info: Dict[str, Any] = {
        "hostname": platform.node() or NOT_AVAILABLE,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **cpu_fields(),
        **gpu_fields(),
        **runtime_fields(),
        **jetson_fields(),
    }
    return {key: info.get(key, NOT_AVAILABLE) for key in FIELDS}


def device_tier(fingerprint: Dict[str, Any]) -> str:
    """A short column label for the report: the Jetson model, else the GPU, else the CPU."""
    for key in ("jetson_model", "gpu_name"):
        if fingerprint.get(key, NOT_AVAILABLE) != NOT_AVAILABLE:
            return str(fingerprint[key])
    cores = fingerprint.get("cpu_cores_usable", "?")
    return f"CPU {fingerprint.get('cpu_model', NOT_AVAILABLE)} ({cores} cores)"
