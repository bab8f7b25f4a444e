"""The deployable bundle: a folder with ONNX variants, optional engine, and ``manifest.json`` describing it.

This module is the one owner of the bundle contract between host and board: the artifact file names, the manifest
schema (typed below, so no reader or writer spells its keys) and the sha256 listing. Written by ``edgekit build``
(atomically: staged in a sibling folder and renamed into place, so a failed build never leaves a half-written
bundle that looks valid), read by the runner, ``edgekit compile`` and the benchmarks. Every file is listed with its
sha256 and verified at load, and the manifest carries the sha256 of its own canonical form (``manifest_sha256``),
so one changed byte in, say, the preprocessing mean is refused at load instead of silently running with wrong
preprocessing. Torch-free and Python 3.6: boards read bundles.
"""

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Type, TypeVar, Union

from edgekit.board.classes import ClassSet
from edgekit.board.outputs import check_output_dir
from edgekit.board.preprocess import Preprocessing
from edgekit.errors import EdgekitError

FORMAT = "edgekit-bundle"
VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest_sha256"  # key of the manifest's digest of its other keys

# The artifact names: the one table every writer and reader of a bundle uses.
ONNX_FILES = {"fp32": "model.fp32.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.qdq.onnx"}
CALIBRATION_CACHE_FILE = "calibration.cache"
CHECKPOINT_FILE = "checkpoint.pt"
ENGINE_FILE = "model.engine"
TIMING_CACHE_PATTERN = "timing.trt{version}.sm{sm}.cache"  # keyed: a timing cache only fits its GPU and release
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
# Graph tensor names and the ONNX metadata keys that carry the preprocessing and classes with an exported model.
INPUT_NAME = "input"
LOGITS_NAME = "logits"
CLASSMAP_NAME = "classmap"
META_PREPROCESSING = "edgekit.preprocessing"
META_CLASSES = "edgekit.classes"
META_MODEL = "edgekit.model"
META_IO = "edgekit.io"
# Model files given alone (not in a bundle), recognised by suffix.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def timing_cache_file(tensorrt_version: str, compute_capability: str) -> str:
    """'timing.trt8.5.2.sm72.cache': the TensorRT timing cache for one release (major.minor.patch) and GPU."""
    version = ".".join(tensorrt_version.split(".")[:3])
    return TIMING_CACHE_PATTERN.format(version=version, sm=compute_capability.replace("sm_", "").replace(".", ""))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(data: Dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no whitespace) over every key but the digest itself:
    independent of indentation and key order, so only a change of content changes it."""
    content = {key: value for key, value in data.items() if key != MANIFEST_DIGEST}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


_Part = TypeVar("_Part", bound="_Section")


class _Section:
    """A manifest section: a dataclass read from its JSON object, naming the key that is missing or mistyped."""

    @classmethod
    def from_json(cls: Type[_Part], data: Any, where: str) -> _Part:
        if not isinstance(data, dict):
            raise EdgekitError(f"{where}: expected an object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]  # type: ignore[arg-type]
        missing = [name for name in required if name not in data]
        if missing:
            raise EdgekitError(f"{where}: missing {', '.join(missing)}; rebuild the bundle with `edgekit build`")
        return cls(**{name: data[name] for name in names if name in data})

    def to_json(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ModelInfo(_Section):
    name: str
    kwargs: Dict[str, Any]
    params: int
    macs: int


@dataclass
class InputSpec(_Section):
    name: str
    shape: List[int]  # NCHW
    dtype: str  # "float32", or "uint8" with normalisation in the graph
    normalized_in_graph: bool = False


@dataclass
class OutputSpec(_Section):
    name: str
    kind: str  # "logits" (NCHW scores) or "classmap" (NHW class ids)
    dtype: str = "float32"


@dataclass
class Artifacts(_Section):
    """Bundle-relative file names (values of the table above); ``onnx`` maps precision -> file."""

    onnx: Dict[str, str]
    runtime_onnx: str  # the variant that runs anywhere onnxruntime does
    calibration_cache: Optional[str] = None
    checkpoint: Optional[str] = None
    engine: Optional[str] = None


_BUNDLE_KEYS = ("format", "version", "files", MANIFEST_DIGEST)  # manifest.json keys owned by Bundle, not Manifest


@dataclass
class Manifest:
    """What ``manifest.json`` says about a bundle (``files``, ``format`` and ``version`` belong to :class:`Bundle`).

    ``target_profile`` is the whole device profile at build time, so a board needs no copy of ``targets/``;
    ``engine`` describes the TensorRT engine once one is built (release, GPU, compute capability);
    ``metrics`` holds what the build measured (export parity, FP16/INT8 agreement, accuracy, class-map check);
    ``extra`` keeps any key this reader does not know, written back unchanged.
    """

    model: ModelInfo
    classes: ClassSet
    preprocessing: Preprocessing
    input: InputSpec
    output: OutputSpec
    target: str
    target_profile: Dict[str, Any]
    precision: str
    precision_choice: Dict[str, Any]
    artifacts: Artifacts
    engine: Optional[Dict[str, Any]] = None
    metrics: Dict[str, Any] = field(default_factory=dict)
    built_with: Dict[str, Any] = field(default_factory=dict)
    onnx: Dict[str, Any] = field(default_factory=dict)  # {opset, why}: the highest the target's TensorRT parser takes
    classmap_head: Dict[str, Any] = field(default_factory=dict)  # {formulation, why} of the in-graph class map
    extra: Dict[str, Any] = field(default_factory=dict)

    _REQUIRED = (
        *("model", "classes", "preprocessing", "input", "output"),
        *("target", "target_profile", "precision", "artifacts"),
    )

    def to_json(self) -> Dict[str, Any]:
        data = {
            "model": self.model.to_json(),
            "classes": self.classes.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "input": self.input.to_json(),
            "output": self.output.to_json(),
            "target": self.target,
            "target_profile": self.target_profile,
            "precision": self.precision,
            "precision_choice": self.precision_choice,
            "artifacts": self.artifacts.to_json(),
            "engine": self.engine,
            "metrics": self.metrics,
            "built_with": self.built_with,
            "onnx": self.onnx,
            "classmap_head": self.classmap_head,
        }
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: Dict[str, Any], where: str) -> "Manifest":
        missing = [key for key in cls._REQUIRED if key not in data]
        if missing:
            raise EdgekitError(
                f"{where}: missing {', '.join(missing)}; it was not made by this `edgekit build`, rebuild it"
            )
        known = {f.name for f in fields(cls) if f.name != "extra"}
        return cls(
            model=ModelInfo.from_json(data["model"], f"{where}: model"),
            classes=ClassSet.from_dict(data["classes"]),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]),
            input=InputSpec.from_json(data["input"], f"{where}: input"),
            output=OutputSpec.from_json(data["output"], f"{where}: output"),
            target=str(data["target"]),
            target_profile=dict(data["target_profile"]),
            precision=str(data["precision"]),
            precision_choice=dict(data.get("precision_choice") or {}),
            artifacts=Artifacts.from_json(data["artifacts"], f"{where}: artifacts"),
            engine=data.get("engine"),
            metrics=dict(data.get("metrics") or {}),
            built_with=dict(data.get("built_with") or {}),
            onnx=dict(data.get("onnx") or {}),
            classmap_head=dict(data.get("classmap_head") or {}),
            extra={k: v for k, v in data.items() if k not in known and k not in _BUNDLE_KEYS},
        )


@dataclass
class Bundle:
    """A loaded bundle: its folder, its typed manifest and the sha256 of every other file in it."""

    root: Path
    manifest: Manifest
    files: Dict[str, str]

    @property
    def preprocessing(self) -> Preprocessing:
        return self.manifest.preprocessing

    @property
    def classes(self) -> ClassSet:
        return self.manifest.classes

    @property
    def model_name(self) -> str:
        return self.manifest.model.name

    def artifact(self, relative: Optional[str]) -> Optional[Path]:
        return None if relative is None else self.root / relative

    @property
    def runtime_onnx(self) -> Path:
        """The ONNX model that runs anywhere onnxruntime does."""
        return self.root / self.manifest.artifacts.runtime_onnx

    @property
    def engine(self) -> Optional[Path]:
        return self.artifact(self.manifest.artifacts.engine)

    @classmethod
    def load(cls, root: Union[str, Path], verify: bool = True) -> "Bundle":
        root = Path(root)
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise EdgekitError(f"{root} is not an edgekit bundle (no {MANIFEST}); create one with `edgekit build`")
        try:
            data = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EdgekitError(f"{manifest_path} is corrupt: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise EdgekitError(f"{manifest_path} is not an edgekit bundle manifest")
        if data.get("version") != VERSION:
            raise EdgekitError(f"{root}: bundle version {data.get('version')} is not supported (want {VERSION})")
        _check_manifest_digest(data, manifest_path)
        bundle = cls(
            root=root, manifest=Manifest.from_json(data, str(manifest_path)), files=dict(data.get("files", {}))
        )
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> None:
        """Check every listed file against its sha256; a mismatch means a corrupt or tampered bundle."""
        for relative, expected in self.files.items():
            path = self.root / relative
            if not path.is_file():
                raise EdgekitError(f"bundle {self.root} is incomplete: {relative} is missing; rebuild it")
            actual = sha256_file(path)
            if actual != expected:
                raise EdgekitError(
                    f"bundle {self.root}: {relative} has sha256 {actual[:12]}…, manifest says {expected[:12]}…; "
                    "the file is corrupt or was changed after the build — rebuild the bundle"
                )


def _check_manifest_digest(data: Dict[str, Any], path: Path) -> None:
    recorded = data.get(MANIFEST_DIGEST)
    if recorded is None:
        raise EdgekitError(f"{path} has no {MANIFEST_DIGEST}: it was not written by this `edgekit build`; rebuild it")
    if manifest_digest(data) != recorded:
        raise EdgekitError(
            f"{path} was changed after the build (its content no longer matches {MANIFEST_DIGEST}); rebuild the bundle"
        )


def is_bundle(root: Path) -> bool:
    """Whether ``root`` holds an edgekit bundle manifest (the only kind of folder a build may replace)."""
    try:
        return json.loads((root / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class BundleWriter:
    """Stage a bundle in a temporary sibling folder; ``commit`` hashes the files and renames it into place.

    The destination must be new, empty or an existing bundle: anything else is refused before any work. The
    staging folder is named ``.NAME.partial-PID-HEX`` so that one left by a killed build (SIGKILL, power loss)
    is recognised as stale by the next build of the same bundle and removed.
    """

    def __init__(self, destination: Union[str, Path]) -> None:
        self.destination = check_output_dir(
            Path(destination).absolute(), "bundle folder", is_bundle, "an edgekit bundle"
        ).resolve()
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_staging()
        self.staging = self.destination.with_name(
            f".{self.destination.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self.staging.mkdir()

    def _remove_stale_staging(self) -> None:
        """Remove the staging (and replaced-bundle) folders of builds of this bundle whose process is gone."""
        for kind in ("partial", "old"):
            for leftover in self.destination.parent.glob(f".{self.destination.name}.{kind}-*"):
                pid_text = leftover.name.rsplit("-", 2)[-2]
                if leftover.is_dir() and pid_text.isdigit() and not _process_alive(int(pid_text)):
                    shutil.rmtree(str(leftover), ignore_errors=True)

    def path(self, relative: str) -> Path:
        """Where to write a bundle file while staging."""
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def commit(self, manifest: Manifest) -> Bundle:
        files = {
            str(p.relative_to(self.staging)): sha256_file(p)
            for p in sorted(self.staging.rglob("*"))
            if p.is_file() and p.name != MANIFEST
        }
        full = {"format": FORMAT, "version": VERSION, **manifest.to_json(), "files": files}
        full[MANIFEST_DIGEST] = manifest_digest(full)
        (self.staging / MANIFEST).write_text(json.dumps(full, indent=2) + "\n")
        if self.destination.exists() and any(self.destination.iterdir()):
            # re-checked here: the folder may have been filled while the build ran
            check_output_dir(self.destination, "bundle folder", is_bundle, "an edgekit bundle")
            backup = self.destination.with_name(f".{self.destination.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            self.destination.rename(backup)
            self.staging.rename(self.destination)
            shutil.rmtree(backup)
        else:
            self.staging.replace(self.destination)  # an empty folder is replaced atomically
        return Bundle(root=self.destination, manifest=manifest, files=files)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], *rest: object) -> None:
        if exc_type is not None or self.staging.exists():
            self.abort()
