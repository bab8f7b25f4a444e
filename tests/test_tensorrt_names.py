"""Every TensorRT name the engine builder touches exists in each target's TensorRT release.

The names are read from edgekit/board/backends/tensorrt_backend/builder.py with ``ast`` (so this cannot drift from
the code) and looked up in shared/reference/tensorrt-api-by-version.json, a per-release dump of the Python bindings'
classes, methods and enums extracted from NVIDIA's binding sources. Names used only on some releases must be listed
in ``GATED`` with a range the dump confirms, and their use must follow a ``has(release, NAME)`` check.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgekit.board.backends.tensorrt_backend import builder as tensorrt_build
from edgekit.board.backends.tensorrt_backend.builder import GATED, Release, has
from edgekit.board.targets import load_all_targets

MODULE = Path(tensorrt_build.__file__)
# Defined in tensorrt/__init__.py, outside the pybind11 sources the dump was extracted from.
OUTSIDE_BINDINGS = {"__version__"}
OLDEST_SUPPORTED: Release = (8, 2)


@dataclass(frozen=True)
class Use:
    name: str  # "Class" or "Class.member"
    line: int
    node: ast.AST


def load_dump(shared: Path) -> dict[Release, dict[str, list[str]]]:
    raw = json.loads((shared / "reference" / "tensorrt-api-by-version.json").read_text())
    dump = {}
    for tag, api in raw.items():
        if tag.endswith(".cpp"):  # per-file extracts, empty for these tags
            continue
        major, minor = tag.lstrip("v").split(".")[:2]
        dump[(int(major), int(minor))] = api
    return dump


def exists(api: dict[str, list[str]], name: str) -> bool:
    owner, _, member = name.partition(".")
    if not member:
        return owner in OUTSIDE_BINDINGS or owner in api or f"enum:{owner}" in api or owner in api["<module>"]
    members = api.get(owner, api.get(f"enum:{owner}"))
    return members is not None and member in members


def trt_class(annotation: ast.expr | None) -> str | None:
    """'Builder' for an annotation ``trt.Builder``, ``"trt.Builder"`` or ``Optional[trt.Builder]`` (board code is
    3.6: signatures quote a lazily imported module's names)."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return trt_class(ast.parse(annotation.value, mode="eval").body)
    if (
        isinstance(annotation, ast.Subscript)
        and isinstance(annotation.value, ast.Name)
        and annotation.value.id == "Optional"
    ):
        return trt_class(annotation.slice)
    if isinstance(annotation, ast.Attribute) and isinstance(annotation.value, ast.Name):
        return annotation.attr if annotation.value.id == "trt" else None
    return None


def trt_path(node: ast.AST) -> str | None:
    """'BuilderFlag.FP16' for ``trt.BuilderFlag.FP16``, 'Builder' for ``trt.Builder``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "trt" and parts:
        return ".".join(reversed(parts[-2:]))
    return None


class Scan:
    """TensorRT names used by the module, with the problems that would let a name escape the check."""

    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.parents = {child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}
        self.uses: list[Use] = []
        self.untracked: list[str] = []
        annotations = {
            id(sub) for node in ast.walk(self.tree) for ann in self._annotations(node) for sub in ast.walk(ann)
        }
        for function in [n for n in ast.walk(self.tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            self._scan_function(function)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    cls = trt_path(base)
                    if cls:
                        methods = [f.name for f in node.body if isinstance(f, ast.FunctionDef)]
                        self.uses += [Use(f"{cls}.{m}", node.lineno, node) for m in methods if not m.startswith("__")]
            if id(node) in annotations or isinstance(self.parents.get(node), ast.Attribute):
                continue
            name = trt_path(node)
            if name and not name.endswith("__init__"):
                self.uses.append(Use(name, getattr(node, "lineno", 0), node))

    @staticmethod
    def _annotations(node: ast.AST) -> Iterator[ast.expr]:
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            yield node.annotation
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            yield node.returns

    def _scan_function(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        typed = {a.arg: trt_class(a.annotation) for a in function.args.args if trt_class(a.annotation)}
        for node in ast.walk(function):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and trt_class(node.annotation):
                typed[node.target.id] = trt_class(node.annotation)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                constructor = trt_path(node.value.func)
                target = node.targets[0]
                if constructor and "." not in constructor and isinstance(target, ast.Name):
                    typed[target.id] = constructor
                elif self._on_trt_object(node.value.func, typed):
                    self.untracked.append(f"line {node.lineno}: annotate the result with its TensorRT type")
        for node in ast.walk(function):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in typed:
                self.uses.append(Use(f"{typed[node.value.id]}.{node.attr}", node.lineno, node))
            call = node.value if isinstance(node, ast.Attribute) else None
            if isinstance(call, ast.Call) and self._on_trt_object(call.func, typed):
                self.untracked.append(f"line {node.lineno}: split the chained call to check .{node.attr}")

    @staticmethod
    def _on_trt_object(func: ast.expr, typed: dict[str, str | None]) -> bool:
        return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in typed

    def guarded(self, use: Use, gate: str) -> bool:
        """Whether an enclosing function calls has(..., gate) at or before the use."""
        node: ast.AST | None = use.node
        while node is not None:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for call in ast.walk(node):
                    if (
                        isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Name)
                        and call.func.id == "has"
                        and any(isinstance(a, ast.Constant) and a.value == gate for a in call.args)
                        and call.lineno <= use.line
                    ):
                        return True
            node = self.parents.get(node)
        return False


def gate_of(name: str) -> str | None:
    if name in GATED:
        return name
    owner = name.partition(".")[0]
    return owner if owner in GATED else None


@pytest.fixture(scope="module")
def scan() -> Scan:
    return Scan(MODULE.read_text())


@pytest.fixture
def dump(shared: Path) -> dict[Release, dict[str, list[str]]]:
    return load_dump(shared)


def target_releases() -> dict[Release, list[str]]:
    releases: dict[Release, list[str]] = {}
    for target in load_all_targets():
        if target.tensorrt_version is not None:
            major, minor = target.tensorrt_version[:2]
            releases.setdefault((major, minor), []).append(target.name)
    return releases


def test_the_scan_sees_the_builder(scan: Scan) -> None:
    names = {u.name for u in scan.uses}
    assert {"Builder.build_serialized_network", "IBuilderConfig.set_flag", "BuilderFlag.FP16", "OnnxParser"} <= names
    assert "IBuilderConfig.max_workspace_size" in names and "IInt8EntropyCalibrator2.read_calibration_cache" in names
    assert not scan.untracked, scan.untracked


def test_every_name_exists_in_each_target_release(scan: Scan, dump: dict[Release, dict[str, list[str]]]) -> None:
    releases = target_releases()
    assert {(8, 2), (8, 5), (10, 3), (11, 1)} <= set(releases)
    missing = []
    for release, targets in sorted(releases.items()):
        assert release in dump, f"no API dump for TensorRT {release} (targets {targets}); extend the reference"
        for use in scan.uses:
            gate = gate_of(use.name)
            if (gate is None or has(release, gate)) and not exists(dump[release], use.name):
                missing.append(f"{use.name} (line {use.line}) is not in TensorRT {release} ({', '.join(targets)})")
    assert not missing, "\n".join(missing)


def test_gates_match_the_bindings_and_guard_every_use(scan: Scan, dump: dict[Release, dict[str, list[str]]]) -> None:
    used = {gate_of(u.name) for u in scan.uses}
    assert set(GATED) <= used, f"stale GATED entries: {set(GATED) - used}"
    for name in GATED:
        for release, api in dump.items():
            if release >= OLDEST_SUPPORTED and has(release, name):
                assert exists(api, name), f"GATED says {name} is used on {release}, but that release lacks it"
    unguarded = [f"{u.name} (line {u.line})" for u in scan.uses if (g := gate_of(u.name)) and not scan.guarded(u, g)]
    assert not unguarded, f"use these only after has(release, NAME): {unguarded}"


def test_the_check_catches_a_removed_name(dump: dict[Release, dict[str, list[str]]]) -> None:
    """The same scan flags an 8.x-only call made without a gate (so the tests above can fail)."""
    probe = Scan(
        "def f(builder: trt.Builder, config: trt.IBuilderConfig) -> None:\n"
        "    builder.build_engine(None, config)\n"
        "    config.max_workspace_size = 1\n"
        "    plan = builder.build_serialized_network(None, config)\n"
    )
    names = {u.name for u in probe.uses}
    assert not exists(dump[(10, 3)], "Builder.build_engine") and "Builder.build_engine" in names
    assert not probe.guarded(next(u for u in probe.uses if u.name == "IBuilderConfig.max_workspace_size"), "x")
    assert probe.untracked == ["line 4: annotate the result with its TensorRT type"]
