"""Every TensorRT name edgekit touches exists in each target's TensorRT release, and each release-only name is used
only in a branch that ``has()`` proves is taken on that release.

The names are read with ``ast`` from every module that imports tensorrt (so this cannot drift from the code) and
looked up in shared/reference/tensorrt-api-by-version.json, a per-release dump of the Python bindings' classes,
methods and enums extracted from NVIDIA's binding sources. Names used only on some releases are listed in
``releases.GATED`` with a range the dump confirms. A use is guarded when it sits in the branch of an ``if`` whose
test proves ``has(release, NAME)`` (``has(...)``, ``x and has(...)``, or the ``else`` of ``has(OTHER)`` where
OTHER's range is NAME's complement), or after an early ``if not has(...): return/raise`` in the same block; a
``has()`` call elsewhere in the function guards nothing.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import edgekit
from edgekit.board.backends.tensorrt_backend.releases import GATED, OLDEST_SUPPORTED, Release, has
from edgekit.board.targets import load_all_targets

PACKAGE = Path(edgekit.__file__).parent
# Every module that imports tensorrt; test_every_tensorrt_module_is_scanned keeps this list complete.
MODULES = [
    "board/backends/tensorrt_backend/builder.py",
    "board/backends/tensorrt_backend/runner.py",
    "board/backends/tensorrt_backend/calibrator.py",
    "board/measure/profile.py",
    "board/measure/fingerprint.py",
]
# Defined in tensorrt/__init__.py (``__version__``, ``nptype``) or nested in a class the dump lists flat
# (``ILogger.Severity``, exported as ``Logger.WARNING``; pyCore.cpp binds it in every release from 8.0 to 11.1).
OUTSIDE_BINDINGS = {"__version__", "nptype", "Logger.WARNING"}
IMPORTS_TENSORRT = re.compile(r"^\s*(import tensorrt\b|from tensorrt\b)", re.MULTILINE)
Bound = tuple[int, int] | None


@dataclass(frozen=True)
class Use:
    name: str  # "Class" or "Class.member"
    line: int
    node: ast.AST
    module: str


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
    if name in OUTSIDE_BINDINGS:
        return True
    owner, _, member = name.partition(".")
    if not member:
        return owner in OUTSIDE_BINDINGS or owner in api or f"enum:{owner}" in api or owner in api["<module>"]
    members = api.get(owner, api.get(f"enum:{owner}"))
    return members is not None and member in members


def trt_class(annotation: ast.expr | None) -> str | None:
    """'Builder' for ``trt.Builder``, ``"trt.Builder"``, ``Optional[trt.Builder]`` or ``Type[trt.Builder]`` (board
    code is 3.6: signatures quote a lazily imported module's names)."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return trt_class(ast.parse(annotation.value, mode="eval").body)
    if (
        isinstance(annotation, ast.Subscript)
        and isinstance(annotation.value, ast.Name)
        and annotation.value.id in ("Optional", "Type")
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


def gate_of(name: str) -> str | None:
    if name in GATED:
        return name
    owner = name.partition(".")[0]
    return owner if owner in GATED else None


def _covers(proved: tuple[Bound, Bound], needed: tuple[Bound, Bound]) -> bool:
    """Whether every release in the half-open range ``proved`` lies in ``needed`` (None: unbounded)."""
    (low, high), (need_low, need_high) = proved, needed
    low_ok = need_low is None or (low is not None and low >= need_low)
    high_ok = need_high is None or (high is not None and high <= need_high)
    return low_ok and high_ok


def _complement(first: Bound, until: Bound) -> tuple[Bound, Bound] | None:
    if first is None and until is not None:
        return until, None
    if until is None and first is not None:
        return None, first
    return None


def proves(test: ast.expr, gate: str, truth: bool = True) -> bool:
    """Whether ``test`` evaluating to ``truth`` proves that ``has(release, gate)`` holds."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return proves(test.operand, gate, not truth)
    if isinstance(test, ast.BoolOp):
        conjunct = isinstance(test.op, ast.And) == truth  # a true `and` or a false `or` fixes every operand
        return conjunct and any(proves(value, gate, truth) for value in test.values)
    if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "has"):
        return False
    names = [a.value for a in test.args[1:] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if truth:
        return any(_covers(GATED[name], GATED[gate]) for name in names if name in GATED)
    complement = _complement(*GATED[names[0]]) if len(names) == 1 and names[0] in GATED else None
    return complement is not None and _covers(complement, GATED[gate])


def _exits(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise)


class Scan:
    """TensorRT names used by one module, with the problems that would let a name escape the check."""

    def __init__(self, source: str, module: str = "<probe>") -> None:
        self.module = module
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
                        self._methods_of(node, cls)
            if id(node) in annotations or isinstance(self.parents.get(node), ast.Attribute):
                continue
            name = trt_path(node)
            if name and not name.endswith("__init__"):
                self.uses.append(Use(name, getattr(node, "lineno", 0), node, module))

    def _methods_of(self, node: ast.ClassDef, cls: str) -> None:
        methods = [f.name for f in node.body if isinstance(f, ast.FunctionDef)]
        overrides = [m for m in methods if not m.startswith("__") and m not in ("close",)]
        self.uses += [Use(f"{cls}.{m}", node.lineno, node, self.module) for m in overrides]

    @staticmethod
    def _annotations(node: ast.AST) -> Iterator[ast.expr]:
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            yield node.annotation
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            yield node.returns

    def _scan_function(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        typed = {a.arg: trt_class(a.annotation) for a in function.args.args if trt_class(a.annotation)}
        declared = {  # ``ok: bool`` declared, then assigned in branches: not a TensorRT object
            n.target.id
            for n in ast.walk(function)
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and not trt_class(n.annotation)
        }
        for node in ast.walk(function):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and trt_class(node.annotation):
                typed[node.target.id] = trt_class(node.annotation)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                constructor = trt_path(node.value.func)
                target = node.targets[0]
                if constructor and "." not in constructor and isinstance(target, ast.Name):
                    typed[target.id] = constructor
                elif self._on_trt_object(node.value.func, typed) and not (
                    isinstance(target, ast.Name) and target.id in declared
                ):
                    self.untracked.append(f"line {node.lineno}: annotate the result with its TensorRT type")
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in typed
                and not node.attr.startswith("__")
            ):
                self.uses.append(Use(f"{typed[node.value.id]}.{node.attr}", node.lineno, node, self.module))
            call = node.value if isinstance(node, ast.Attribute) else None
            if isinstance(call, ast.Call) and self._on_trt_object(call.func, typed):
                self.untracked.append(f"line {node.lineno}: split the chained call to check .{node.attr}")
            if isinstance(node, ast.ClassDef):  # class X(base) with ``base: Type[trt.IInt8Calibrator] = ...``
                for base in node.bases:
                    if isinstance(base, ast.Name) and typed.get(base.id):
                        self._methods_of(node, str(typed[base.id]))

    @staticmethod
    def _on_trt_object(func: ast.expr, typed: dict[str, str | None]) -> bool:
        return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in typed

    def guarded(self, use: Use, gate: str) -> bool:
        """Whether the branch holding the use is only taken where ``has(release, gate)`` holds."""
        child, node = use.node, self.parents.get(use.node)
        while node is not None:
            if isinstance(node, ast.If | ast.IfExp):
                in_body = child is node.body or (isinstance(node.body, list) and child in node.body)
                in_else = child is node.orelse or (isinstance(node.orelse, list) and child in node.orelse)
                if (in_body and proves(node.test, gate)) or (in_else and proves(node.test, gate, truth=False)):
                    return True
            conjunction = isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And) and child in node.values
            if conjunction and any(proves(v, gate) for v in node.values[: node.values.index(child)]):
                return True
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if isinstance(block, list) and child in block:
                    for earlier in block[: block.index(child)]:
                        if isinstance(earlier, ast.If) and _exits(earlier.body) and proves(earlier.test, gate, False):
                            return True
            child, node = node, self.parents.get(node)
        return False


@pytest.fixture(scope="module")
def scans() -> list[Scan]:
    return [Scan((PACKAGE / module).read_text(), module) for module in MODULES]


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


def test_every_tensorrt_module_is_scanned() -> None:
    importing = {
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if IMPORTS_TENSORRT.search(path.read_text())
    }
    assert importing == set(MODULES), f"scan these too (or drop them from MODULES): {importing ^ set(MODULES)}"


def test_the_scan_sees_every_module(scans: list[Scan]) -> None:
    names = {u.name for scan in scans for u in scan.uses}
    assert {"Builder.build_serialized_network", "IBuilderConfig.set_flag", "BuilderFlag.FP16", "OnnxParser"} <= names
    assert {"IBuilderConfig.max_workspace_size", "IInt8Calibrator.get_batch", "ITimingCache.serialize"} <= names
    assert {
        "EngineInspector.get_engine_information",
        "Runtime.DLA_core",
        "ICudaEngine.create_engine_inspector",
    } <= names
    assert {"IExecutionContext.execute_async_v2", "IExecutionContext.execute_async_v3"} <= names  # runner
    assert {"ICudaEngine.get_binding_shape", "IExecutionContext.set_tensor_address"} <= names  # runner
    assert {"IInt8EntropyCalibrator2.get_batch", "IProfiler.report_layer_time", "IExecutionContext.profiler"} <= names
    untracked = [f"{scan.module} {problem}" for scan in scans for problem in scan.untracked]
    assert not untracked, untracked


def test_every_name_exists_in_each_target_release(scans: list[Scan], dump: dict[Release, dict[str, list[str]]]) -> None:
    releases = target_releases()
    assert {(8, 2), (8, 5), (10, 3), (11, 1)} <= set(releases)
    missing = []
    for release, targets in sorted(releases.items()):
        assert release in dump, f"no API dump for TensorRT {release} (targets {targets}); extend the reference"
        for use in (u for scan in scans for u in scan.uses):
            gate = gate_of(use.name)
            if (gate is None or has(release, gate)) and not exists(dump[release], use.name):
                missing.append(
                    f"{use.module}:{use.line} {use.name} is not in TensorRT {release} ({', '.join(targets)})"
                )
    assert not missing, "\n".join(missing)


def test_gates_match_the_bindings_and_guard_every_use_in_its_branch(
    scans: list[Scan], dump: dict[Release, dict[str, list[str]]]
) -> None:
    used = {gate_of(u.name) for scan in scans for u in scan.uses}
    assert set(GATED) <= used, f"stale GATED entries: {set(GATED) - used}"
    for name in GATED:
        for release, api in dump.items():
            if release >= OLDEST_SUPPORTED and has(release, name):
                assert exists(api, name), f"GATED says {name} is used on {release}, but that release lacks it"
    unguarded = [
        f"{scan.module}:{u.line} {u.name}"
        for scan in scans
        for u in scan.uses
        if (gate := gate_of(u.name)) and not scan.guarded(u, gate)
    ]
    assert not unguarded, f"use these only in a branch that has(release, NAME) proves: {unguarded}"


def test_the_refused_release_lacks_what_every_build_uses(dump: dict[Release, dict[str, list[str]]]) -> None:
    """8.0 is refused (releases.supported_release) because it lacks DETAILED verbosity and the inspector."""
    assert not exists(dump[(8, 0)], "ProfilingVerbosity.DETAILED")
    assert not exists(dump[(8, 0)], "ICudaEngine.create_engine_inspector")
    assert exists(dump[OLDEST_SUPPORTED], "ProfilingVerbosity.DETAILED")


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


def _use(probe: Scan, name: str) -> Use:
    return next(u for u in probe.uses if u.name == name)


def test_a_has_call_guards_only_its_own_branch() -> None:
    """has() elsewhere in the function, in the other branch, or for a name with another range guards nothing."""
    probe = Scan(
        "def f(release, config: trt.IBuilderConfig, engine: trt.ICudaEngine) -> None:\n"
        "    if has(release, 'IBuilderConfig.max_workspace_size'):\n"
        "        pass\n"
        "    config.max_workspace_size = 1\n"  # after the branch, not in it
        "    if has(release, 'IBuilderConfig.set_memory_pool_limit'):\n"
        "        config.set_memory_pool_limit(1, 2)\n"
        "    else:\n"
        "        config.max_workspace_size = 2\n"  # the complement of 8.4+ is < 8.4: proven
        "    if has(release, 'ICudaEngine.num_io_tensors'):\n"
        "        engine.num_bindings\n"  # wrong branch
        "    else:\n"
        "        engine.get_tensor_name(0)\n"  # wrong branch
        "    if not has(release, 'BuilderFlag.FP16'):\n"
        "        return\n"
        "    config.set_flag(trt.BuilderFlag.FP16)\n"  # after an early exit: proven
        "    x = has(release, 'IBuilderConfig.int8_calibrator') and config.int8_calibrator\n"
    )
    workspace = [u for u in probe.uses if u.name == "IBuilderConfig.max_workspace_size"]
    assert [probe.guarded(u, u.name) for u in workspace] == [False, True]
    assert probe.guarded(_use(probe, "IBuilderConfig.set_memory_pool_limit"), "IBuilderConfig.set_memory_pool_limit")
    assert not probe.guarded(_use(probe, "ICudaEngine.num_bindings"), "ICudaEngine.num_bindings")
    assert not probe.guarded(_use(probe, "ICudaEngine.get_tensor_name"), "ICudaEngine.get_tensor_name")
    assert probe.guarded(_use(probe, "BuilderFlag.FP16"), "BuilderFlag.FP16")
    assert probe.guarded(_use(probe, "IBuilderConfig.int8_calibrator"), "IBuilderConfig.int8_calibrator")
