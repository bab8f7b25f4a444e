"""The deployable bundle: a folder with ONNX variants, optional engine, and ``manifest.json`` describing it.

Written by ``edgekit build`` (atomically: staged in a sibling folder and renamed into place, so a failed build
never leaves a half-written bundle that looks valid), read by the runner, ``edgekit compile`` and the
benchmarks. Every file is listed with its sha256 and verified at load. Torch-free: boards read bundles.
"""

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Type, Union

from edgekit.board.classes import ClassSet
from edgekit.board.preprocess import Preprocessing
from edgekit.errors import EdgekitError

FORMAT = "edgekit-bundle"
VERSION = 1
MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A loaded bundle. ``manifest`` keys (all written by ``edgekit build``):

    - ``model``: {name, kwargs, params, macs}; ``classes``: ClassSet dict; ``preprocessing``: Preprocessing dict
    - ``input``: {name, shape, dtype ("float32"/"uint8"), normalized_in_graph}
    - ``output``: {name, kind ("logits"/"classmap")}
    - ``target``, ``precision``: what it was built for
    - ``artifacts``: {onnx: {precision: file}, runtime_onnx: file, calibration_cache: file|None, engine: file|None}
    - ``engine``: {tensorrt_version, gpu, compute_capability, ...} or None
    - ``metrics``: accuracy and parity figures measured during the build
    - ``files``: {relative path: sha256} for every other file in the bundle
    """

    root: Path
    manifest: Dict[str, Any]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.manifest["preprocessing"])

    @property
    def classes(self) -> ClassSet:
        return ClassSet.from_dict(self.manifest["classes"])

    @property
    def model_name(self) -> str:
        return str(self.manifest["model"]["name"])

    def artifact(self, relative: Optional[str]) -> Optional[Path]:
        return None if relative is None else self.root / relative

    @property
    def runtime_onnx(self) -> Path:
        """The ONNX model that runs anywhere onnxruntime does."""
        path = self.artifact(self.manifest["artifacts"]["runtime_onnx"])
        assert path is not None
        return path

    @property
    def engine(self) -> Optional[Path]:
        return self.artifact(self.manifest["artifacts"].get("engine"))

    @classmethod
    def load(cls, root: Union[str, Path], verify: bool = True) -> "Bundle":
        root = Path(root)
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise EdgekitError(f"{root} is not an edgekit bundle (no {MANIFEST}); create one with `edgekit build`")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise EdgekitError(f"{manifest_path} is corrupt: {exc}") from exc
        if manifest.get("format") != FORMAT:
            raise EdgekitError(f"{manifest_path} is not an edgekit bundle manifest")
        if manifest.get("version") != VERSION:
            raise EdgekitError(f"{root}: bundle version {manifest.get('version')} is not supported (want {VERSION})")
        bundle = cls(root=root, manifest=manifest)
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> None:
        """Check every listed file against its sha256; a mismatch means a corrupt or tampered bundle."""
        for relative, expected in self.manifest.get("files", {}).items():
            path = self.root / relative
            if not path.is_file():
                raise EdgekitError(f"bundle {self.root} is incomplete: {relative} is missing; rebuild it")
            actual = sha256_file(path)
            if actual != expected:
                raise EdgekitError(
                    f"bundle {self.root}: {relative} has sha256 {actual[:12]}…, manifest says {expected[:12]}…; "
                    "the file is corrupt or was changed after the build — rebuild the bundle"
                )


class BundleWriter:
    """Stage a bundle in a temporary sibling folder; ``commit`` hashes the files and renames it into place."""

    def __init__(self, destination: Union[str, Path]) -> None:
        self.destination = Path(destination).resolve()
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self.staging = self.destination.with_name(f".{self.destination.name}.partial-{uuid.uuid4().hex[:8]}")
        self.staging.mkdir()

    def path(self, relative: str) -> Path:
        """Where to write a bundle file while staging."""
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def commit(self, manifest: Dict[str, Any]) -> Bundle:
        files = {
            str(p.relative_to(self.staging)): sha256_file(p)
            for p in sorted(self.staging.rglob("*"))
            if p.is_file() and p.name != MANIFEST
        }
        full = {"format": FORMAT, "version": VERSION, **manifest, "files": files}
        (self.staging / MANIFEST).write_text(json.dumps(full, indent=2) + "\n")
        if self.destination.exists():
            backup = self.destination.with_name(f".{self.destination.name}.old-{uuid.uuid4().hex[:8]}")
            self.destination.rename(backup)
            self.staging.rename(self.destination)
            shutil.rmtree(backup)
        else:
            self.staging.rename(self.destination)
        return Bundle(root=self.destination, manifest=full)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], *rest: object) -> None:
        if exc_type is not None or self.staging.exists():
            self.abort()
