"""Power, energy and memory while a benchmark runs, from whatever the platform actually reports.

Power sources, in order: tegrastats or jetson-stats (jtop) on Jetson (the board's input rail), NVML on desktop
GPUs (the board's energy counter), RAPL (``/sys/class/powercap``) on x86 CPUs. When none is readable the result
says ``"not available"`` and why; no figure is ever estimated from TDP or utilisation.
"""

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from edgekit.board.measure.fingerprint import NOT_AVAILABLE

# Total input rail of each Jetson generation as tegrastats names it (Orin/Xavier NX: VDD_IN; Nano/TX2: POM_5V_IN).
TEGRASTATS_RAIL = re.compile(r"\b(VDD_IN|POM_5V_IN|VIN_SYS_5V0)\s+(\d+)(?:mW)?/(\d+)(?:mW)?")
RAPL_ROOT = Path("/sys/class/powercap")


def parse_tegrastats_power_w(line: str) -> Optional[float]:
    """Instantaneous board input power in watts from one tegrastats line, or None when it has no input rail."""
    match = TEGRASTATS_RAIL.search(line)
    return int(match.group(2)) / 1000.0 if match else None


def _rapl_packages() -> List[Path]:
    """Readable RAPL package domains (intel-rapl:N; AMD's powercap driver uses the same names)."""
    domains = [p for p in sorted(RAPL_ROOT.glob("intel-rapl:*")) if p.name.count(":") == 1]
    readable = []
    for domain in domains:
        try:
            int((domain / "energy_uj").read_text())
            readable.append(domain)
        except (OSError, ValueError):
            continue
    return readable


class PowerMonitor:
    """Context manager measuring energy over a block; ``result(frames)`` gives mean watts and joules per frame."""

    def __init__(self, interval_s: float = 0.1, gpu_index: int = 0) -> None:
        self.interval_s = interval_s
        self.gpu_index = gpu_index
        self.source = NOT_AVAILABLE
        self.reason = ""
        self._samples_w: List[float] = []
        self._energy_j: Optional[float] = None
        self._elapsed = 0.0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._process: Optional[subprocess.Popen[str]] = None
        self._start_counters: Dict[str, int] = {}
        self._nvml: Any = None
        self._nvml_handle: Any = None
        self.gpu_memory_peak_mb: Optional[float] = None

    # -- source selection ------------------------------------------------------------------------------------
    def _start(self) -> None:
        if shutil.which("tegrastats"):
            self.source = "tegrastats (board input rail)"
            self._process = subprocess.Popen(
                ["tegrastats", "--interval", str(max(int(self.interval_s * 1000), 10))],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                universal_newlines=True,
            )
            self._thread = threading.Thread(target=self._read_tegrastats, daemon=True)
            self._thread.start()
            return
        if self._start_jtop():
            return
        if self._start_nvml():
            return
        packages = _rapl_packages()
        if packages:
            self.source = f"RAPL ({', '.join(p.name for p in packages)}, CPU package only)"
            self._start_counters = {str(p): int((p / "energy_uj").read_text()) for p in packages}
            return
        self.reason = "no tegrastats/jtop, no NVML GPU, no readable RAPL counters on this machine"

    def _start_jtop(self) -> bool:
        try:
            from jtop import jtop
        except ImportError:
            return False
        self.source = "jetson-stats (jtop, total power)"
        self._thread = threading.Thread(target=self._read_jtop, args=(jtop,), daemon=True)
        self._thread.start()
        return True

    def _start_nvml(self) -> bool:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.gpu_index)
        except Exception:
            return False
        self._nvml, self._nvml_handle = pynvml, handle
        try:
            self._start_counters = {"nvml": int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))}  # mJ
            self.source = "NVML total energy counter (GPU board)"
        except pynvml.NVMLError:
            self.source = "NVML power samples (GPU board)"  # pre-Volta GPUs have no energy counter
        self._thread = threading.Thread(target=self._read_nvml, daemon=True)
        self._thread.start()
        return True

    # -- sampling threads --------------------------------------------------------------------------------------
    def _read_tegrastats(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            watts = parse_tegrastats_power_w(line)
            if watts is not None:
                self._samples_w.append(watts)
            if self._stop.is_set():
                break

    def _read_jtop(self, jtop_class: Any) -> None:
        with jtop_class(interval=self.interval_s) as jetson:
            while jetson.ok() and not self._stop.is_set():
                total = jetson.power.get("tot", {}).get("power")
                if total is not None:
                    self._samples_w.append(float(total) / 1000.0)

    def _read_nvml(self) -> None:
        pynvml, handle = self._nvml, self._nvml_handle
        peak = 0
        while not self._stop.is_set():
            self._samples_w.append(pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)
            peak = max(peak, pynvml.nvmlDeviceGetMemoryInfo(handle).used)
            self._stop.wait(self.interval_s)
        self.gpu_memory_peak_mb = peak / 2**20

    # -- context ---------------------------------------------------------------------------------------------
    def __enter__(self) -> "PowerMonitor":
        self._t0 = time.perf_counter()
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._elapsed = time.perf_counter() - self._t0
        self._stop.set()
        if "nvml" in self._start_counters:
            end = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._nvml_handle))
            self._energy_j = (end - self._start_counters["nvml"]) / 1000.0
        elif self._start_counters:
            self._energy_j = sum(self._rapl_delta_uj(Path(p), start) for p, start in self._start_counters.items()) / 1e6
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._nvml is not None:
            self._nvml.nvmlShutdown()

    @staticmethod
    def _rapl_delta_uj(domain: Path, start: int) -> int:
        end = int((domain / "energy_uj").read_text())
        if end < start:  # the counter wrapped
            end += int((domain / "max_energy_range_uj").read_text())
        return end - start

    def result(self, frames: int) -> Dict[str, Any]:
        """Mean power, energy and energy per frame, or "not available" with the reason."""
        energy = self._energy_j
        if energy is None and self._samples_w:
            energy = sum(self._samples_w) / len(self._samples_w) * self._elapsed
        if energy is None:
            reason = self.reason or f"{self.source} gave no samples during {self._elapsed:.1f}s"
            return {"source": NOT_AVAILABLE, "reason": reason}
        return {
            "source": self.source,
            "mean_w": energy / self._elapsed if self._elapsed > 0 else None,
            "energy_j": energy,
            "energy_per_frame_mj": energy / frames * 1e3 if frames else None,
            "samples": len(self._samples_w),
        }


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so each combination reports its own peak; False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> Optional[float]:
    """This process's peak resident set size since the last reset, from /proc/self/status."""
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None
