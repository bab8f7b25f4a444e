"""Device profiles (``targets/*.yaml``): what each board or GPU can run, and at which precision.

A profile is the single place that knows a device's compute capability, TensorRT/JetPack release, precisions,
DLA cores and peak throughput, with the sources of those facts; ``edgekit build`` reads it to decide what to
export, quantize and compile, and the benchmarks read ``peak_gmacs`` to report a fraction of peak.
Validation is hand-written (a few dozen lines) so that it runs on a board's Python without extra packages and
names the file and the field in every error. Torch-free.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union, cast

import yaml
from typing_extensions import Literal  # typing.Literal is 3.8+; JetPack 4.6 has 3.6

from edgekit.errors import EdgekitError

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: Tuple[Precision, ...] = ("fp32", "fp16", "int8")
KINDS = ("jetson", "desktop", "cpu")
BACKENDS = ("tensorrt", "onnxruntime")
# Where an unavailable precision falls back to: towards more precision, never silently to less accuracy.
FALLBACK: Dict[Precision, Tuple[Precision, ...]] = {"int8": ("fp16", "fp32"), "fp16": ("fp32",), "fp32": ()}


class OnnxSupport(NamedTuple):
    """What the ONNX parser of one TensorRT release takes, from onnx-tensorrt's ``docs/operators.md`` of its
    ``<release>-GA`` branch (``../shared/reference/onnx-tensorrt-operators/operators-<operators>.md``)."""

    release: Tuple[int, int]  # the first TensorRT release these facts hold for
    max_opset: int  # "TensorRT 8.2 supports operators up to Opset 13"
    uint8_input: bool  # the parser takes a UINT8 graph input: its table lists UINT8 for Cast (8.6-GA on)
    operators: str  # which operator table applies: operators-<this>.md


# Oldest first; a release takes the newest row at or below it (10.3, 10.13 and 11.1 take 10.1-GA's "opset 9 to 20").
TENSORRT_ONNX: Tuple[OnnxSupport, ...] = (
    OnnxSupport((8, 2), 13, False, "8.2-GA"),
    OnnxSupport((8, 4), 17, False, "8.4-GA"),
    OnnxSupport((8, 5), 17, False, "8.5-GA"),  # DataType.UINT8 exists in 8.5, but not in its parser's table
    OnnxSupport((8, 6), 17, True, "8.6-GA"),
    OnnxSupport((10, 0), 20, True, "10.1-GA"),
)

TARGETS_ENV = "EDGEKIT_TARGETS_DIR"
_FIELDS = {
    "name": True,
    "description": True,
    "kind": True,
    "backend": True,
    "gpu": False,
    "memory_gib": True,
    "software": False,
    "precisions": True,
    "unsupported": False,
    "default_precision": True,
    "dla_cores": True,
    "input_size": True,
    "workspace_mib": False,
    "builder_optimization_level": False,
    "peak_gmacs": True,
    "sources": True,
}


def data_dir(name: str) -> Path:
    """A folder of YAML definitions the design keeps at the top of the tree (``targets``, ``calibration``): that
    folder in a source checkout, else the copy ``setup.py`` packs into the wheel as ``edgekit/_data/<name>``."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / name
    return checkout if (package.parent / "setup.cfg").is_file() and checkout.is_dir() else package / "_data" / name


def targets_dir() -> Path:
    """The folder of profiles: ``$EDGEKIT_TARGETS_DIR``, else ``targets/`` (checkout or installed package)."""
    override = os.environ.get(TARGETS_ENV)
    return Path(override) if override else data_dir("targets")


@dataclass(frozen=True)
class Target:
    """One validated device profile."""

    name: str
    description: str
    kind: str
    backend: str
    memory_gib: Optional[float]
    precisions: Tuple[Precision, ...]
    unsupported: Dict[str, str]  # precision -> why the device lacks it
    default_precision: Precision
    dla_cores: int
    input_size: Tuple[int, int]  # (width, height)
    peak_gmacs: Dict[str, Optional[float]]  # precision -> GMAC/s (None where not applicable)
    peak_source: str
    sources: Tuple[str, ...]
    path: Path
    gpu_name: Optional[str] = None
    compute_capability: Optional[Tuple[int, int]] = None
    software: Dict[str, str] = field(default_factory=dict)  # jetpack, tensorrt, cuda, python
    workspace_mib: Optional[int] = None
    builder_optimization_level: Optional[int] = None

    @property
    def tensorrt_version(self) -> Optional[Tuple[int, ...]]:
        version = self.software.get("tensorrt")
        return None if version is None else tuple(int(p) for p in version.split("."))

    @property
    def onnx_support(self) -> Optional[OnnxSupport]:
        """What this target's TensorRT parser takes (None for onnxruntime targets, which take any opset we export)."""
        version = self.tensorrt_version
        if version is None:
            return None
        rows = [row for row in TENSORRT_ONNX if row.release <= version[:2]]
        if not rows:
            oldest = ".".join(map(str, TENSORRT_ONNX[0].release))
            raise EdgekitError(
                f"{self.name} lists TensorRT {self.software['tensorrt']}; edgekit exports for TensorRT {oldest} or "
                "newer (JetPack 4.6.1+ on Jetson)"
            )
        return rows[-1]

    @property
    def sm(self) -> Optional[str]:
        if self.compute_capability is None:
            return None
        major, minor = self.compute_capability
        return f"sm_{major}{minor}"

    def to_dict(self) -> Dict[str, Any]:
        """The profile as recorded in a bundle manifest, so the board needs no copy of ``targets/``."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "backend": self.backend,
            "gpu": None
            if self.compute_capability is None
            else {"name": self.gpu_name, "compute_capability": ".".join(map(str, self.compute_capability))},
            "memory_gib": self.memory_gib,
            "software": dict(self.software),
            "precisions": list(self.precisions),
            "unsupported": dict(self.unsupported),
            "default_precision": self.default_precision,
            "dla_cores": self.dla_cores,
            "input_size": list(self.input_size),
            "workspace_mib": self.workspace_mib,
            "builder_optimization_level": self.builder_optimization_level,
            "peak_gmacs": {**self.peak_gmacs, "source": self.peak_source},
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a build uses, and why (so a substitution is never silent)."""

    requested: Optional[Precision]
    chosen: Precision
    reason: str

    @property
    def substituted(self) -> bool:
        return self.requested is not None and self.requested != self.chosen


def choose_precision(target: Target, requested: Optional[str] = None, strict: bool = False) -> PrecisionChoice:
    """The requested precision if the target runs it fast, else the closer-to-FP32 one it does (error if strict)."""
    if requested is None:
        return PrecisionChoice(None, target.default_precision, f"the default precision of {target.name}")
    if requested not in PRECISIONS:
        raise EdgekitError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    wanted = cast(Precision, requested)
    if wanted in target.precisions:
        return PrecisionChoice(wanted, wanted, "as requested")
    why = target.unsupported.get(wanted, f"{target.name} does not list it")
    if strict:
        raise EdgekitError(
            f"{wanted.upper()} is not available on {target.name}: {why}; "
            f"choose one of {', '.join(target.precisions)} or drop --strict"
        )
    chosen = cast(Precision, next(p for p in FALLBACK[wanted] if p in target.precisions))
    return PrecisionChoice(
        wanted, chosen, f"{wanted.upper()} is not available on {target.name} ({why}); using {chosen.upper()} instead"
    )


def available_targets() -> List[str]:
    return sorted(p.stem for p in targets_dir().glob("*.yaml"))


def load_target(name_or_path: Union[str, Path]) -> Target:
    """A profile by name (``jetson-nano``) or by the path of a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = targets_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise EdgekitError(
                f"unknown target {name_or_path!r}; available: {', '.join(available_targets())} "
                "(or pass the path of a profile YAML)"
            )
    if not path.is_file():
        raise EdgekitError(f"target profile not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise EdgekitError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    return parse_target(raw, path)


def load_all_targets() -> List[Target]:
    return [load_target(name) for name in available_targets()]


class _Reader:
    """Typed access to one profile's fields with errors that name the file and the field."""

    def __init__(self, raw: Dict[str, Any], path: Path) -> None:
        self.raw = raw
        self.path = path

    def fail(self, key: str, problem: str) -> EdgekitError:
        return EdgekitError(f"{self.path}: field '{key}': {problem}")

    def get(self, key: str, types: Union[type, Tuple[type, ...]], *, optional: bool = False) -> Any:
        value = self.raw.get(key)
        if value is None and optional:
            return None
        if value is None:
            raise self.fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, types):
            names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            raise self.fail(key, f"expected {names}, got {value!r}")
        return value

    def precision(self, key: str, value: object) -> Precision:
        if value not in PRECISIONS:
            raise self.fail(key, f"{value!r} is not a precision; use {', '.join(PRECISIONS)}")
        return cast(Precision, value)


def parse_target(raw: object, path: Path) -> Target:
    """Validate one profile's YAML content."""
    if not isinstance(raw, dict):
        raise EdgekitError(f"{path}: a target profile must be a YAML mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise EdgekitError(f"{path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    r = _Reader(raw, path)
    name = r.get("name", str)
    if name != path.stem:
        raise r.fail("name", f"{name!r} must match the file name {path.stem!r}")
    kind = r.get("kind", str)
    if kind not in KINDS:
        raise r.fail("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    backend = r.get("backend", str)
    if backend not in BACKENDS:
        raise r.fail("backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")

    precisions = tuple(r.precision("precisions", p) for p in r.get("precisions", list))
    if "fp32" not in precisions:
        raise r.fail("precisions", "must include fp32 (every device runs it; it is the reference)")
    unsupported = {str(k): str(v) for k, v in (r.get("unsupported", dict, optional=True) or {}).items()}
    for precision in PRECISIONS:
        if precision not in precisions and precision not in unsupported:
            raise r.fail("unsupported", f"{precision} is not in 'precisions'; say why the device lacks it here")
    default = r.precision("default_precision", r.get("default_precision", str))
    if default not in precisions:
        raise r.fail("default_precision", f"{default} is not among the supported precisions {list(precisions)}")

    size = r.get("input_size", list)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 and v % 8 == 0 for v in size):
        raise r.fail("input_size", f"expected [width, height], positive multiples of 8, got {size!r}")

    peak = dict(r.get("peak_gmacs", dict))
    peak_source = peak.pop("source", None)
    if not isinstance(peak_source, str) or not peak_source.strip():
        raise r.fail("peak_gmacs", "needs a 'source' saying where the figures come from")
    for precision, value in peak.items():
        r.precision("peak_gmacs", precision)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise r.fail("peak_gmacs", f"{precision}: expected a positive number or null, got {value!r}")

    sources = r.get("sources", list)
    if not sources or not all(isinstance(s, str) and s.strip() for s in sources):
        raise r.fail("sources", "list at least one source for the profile's facts")

    gpu = r.get("gpu", dict, optional=True)
    software = {str(k): str(v) for k, v in (r.get("software", dict, optional=True) or {}).items()}
    capability = None
    if backend == "tensorrt":
        if gpu is None:
            raise r.fail("gpu", "a TensorRT target needs gpu: {name, compute_capability}")
        capability = _parse_capability(r, gpu.get("compute_capability"))
        if "tensorrt" not in software:
            raise r.fail("software", "a TensorRT target needs software.tensorrt (the release on the device)")
        if not all(p.isdigit() for p in software["tensorrt"].split(".")):
            raise r.fail("software", f"tensorrt: expected a version like 8.2.1, got {software['tensorrt']!r}")
    dla = r.get("dla_cores", int)
    if dla < 0:
        raise r.fail("dla_cores", f"must be >= 0, got {dla}")
    level = r.get("builder_optimization_level", int, optional=True)
    if level is not None and not 0 <= level <= 5:
        raise r.fail("builder_optimization_level", f"TensorRT accepts 0-5, got {level}")
    workspace = r.get("workspace_mib", int, optional=True)
    if backend == "tensorrt" and workspace is None:
        raise r.fail("workspace_mib", "a TensorRT target needs the builder workspace limit in MiB")
    memory = r.get("memory_gib", (int, float), optional=True)

    return Target(
        name=name,
        description=r.get("description", str),
        kind=kind,
        backend=backend,
        memory_gib=None if memory is None else float(memory),
        precisions=cast(Tuple[Precision, ...], precisions),
        unsupported=unsupported,
        default_precision=default,
        dla_cores=dla,
        input_size=(size[0], size[1]),
        peak_gmacs={p: (None if v is None else float(v)) for p, v in peak.items()},
        peak_source=peak_source.strip(),
        sources=tuple(sources),
        path=path,
        gpu_name=None if gpu is None else str(gpu.get("name", "")),
        compute_capability=capability,
        software=software,
        workspace_mib=workspace,
        builder_optimization_level=level,
    )


def _parse_capability(r: _Reader, value: object) -> Tuple[int, int]:
    text = str(value) if isinstance(value, str) else ""
    major, dot, minor = text.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise r.fail("gpu", f"compute_capability: expected a quoted 'MAJOR.MINOR' string such as '5.3', got {value!r}")
    return int(major), int(minor)
