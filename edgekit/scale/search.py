"""``edgekit scale``: grow LPS-Net step by step on latencies measured on the target, never estimated.

Every latency comes from the target's own backend and precision, timed as ``edgekit bench`` times (warm-up, then
until the median's 95% CI is narrow, see ``board.measure.timing``), in one process with one setting for every
candidate: onnxruntime with the chosen threads when this machine is the CPU target, the PyTorch CUDA backend on a
desktop GPU without TensorRT, a TensorRT engine where TensorRT runs. A target that is not this machine gets a
kit per round (``edgekit scale-measure`` on the board, then ``--resume --latencies``). Accuracy is a proxy: each
candidate trains for the same seconds with the same seed, and is scored on a fixed held-out split.

Everything lands in ``family.json`` as soon as it is known (latencies, proxy scores), so Ctrl-C or SIGTERM loses at
most the candidate in progress and ``--resume`` re-measures and retrains nothing already done.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import platform
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bench.zoo import random_checkpoint
from edgekit.board import events
from edgekit.board.classes import ClassSet
from edgekit.board.interrupts import sigterm_as_interrupt
from edgekit.board.measure.fingerprint import device_fingerprint
from edgekit.board.measure.timing import StopRule
from edgekit.board.scale_measure import (
    GROUP_SIZE,
    KIT_FILE,
    KIT_SCHEMA,
    LATENCIES_SCHEMA,
    measure_group,
    time_interleaved,
    write_json_atomic,
)
from edgekit.board.targets import Target, choose_precision, load_target
from edgekit.errors import EdgekitError
from edgekit.models.lpsnet import SCALED
from edgekit.scale.space import OPERATORS, TINY, Arch, Proposal, plan_step, slope

SCHEMA = "edgekit-scale/1"
FAMILY_FILE = "family.json"
FINAL_CHECKPOINT = "final.pt"
KIT_LOOKAHEAD = 3  # step lengths requested per operator and round from a board: fewer round trips, more networks
PROXY_NOTE = (
    "proxy mIoU: every network trained for the same seconds with the same seed and scored on the same held-out "
    "split; it ranks candidates and is not the accuracy of a full training"
)
# Shorter than the bench's 20 s per model: a step measures tens of networks. Stops earlier at a ±2% median CI.
DEFAULT_RULE = StopRule(warmup=5, min_runs=20, max_runs=2000, budget_s=2.0, target_rel_ci=0.02)
SETTINGS_CHECKED_ON_RESUME = ("target", "budget_ms", "input_size", "precision", "proxy_seconds", "data", "seed")


@dataclass
class ScaleConfig:
    target: str
    budget_ms: float
    out_dir: Path
    data: Path | None = None  # a dataset folder; None: the synthetic street scenes
    input_size: tuple[int, int] | None = None  # (width, height); None: the target profile's
    precision: str | None = None  # None: the target's default
    proxy_seconds: float = 60.0
    max_steps: int = 14  # the official demo's count
    resume: bool = False
    latencies: Path | None = None  # a board's `edgekit scale-measure` output, with resume
    measure: str = "auto"  # auto, here or kit
    threads: int = 0  # onnxruntime intra-op and torch threads; 0: the runtimes' defaults
    seed: int = 0
    batch_size: int = 8
    num_workers: int = 0
    finetune_seconds: float = 0.0
    compare: list[str] = field(default_factory=list)  # zoo networks measured and proxy-trained alike, for the plot
    kit_lookahead: int = KIT_LOOKAHEAD
    rule: StopRule = DEFAULT_RULE

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.budget_ms <= 0 or self.proxy_seconds <= 0 or self.max_steps < 1:
            raise EdgekitError("--budget-ms and --proxy-seconds must be positive and --max-steps at least 1")
        if self.measure not in ("auto", "here", "kit"):
            raise EdgekitError(f"--measure must be auto, here or kit, not {self.measure!r}")
        if self.latencies is not None and not self.resume:
            raise EdgekitError("--latencies continues a run: give it with --resume")


@dataclass(frozen=True)
class Measurement:
    """Where and with what latencies are measured, and why."""

    where: str  # here or kit
    backend: str  # onnxruntime, tensorrt or torch
    why: str


@dataclass
class ScaleResult:
    family: Path
    status: str  # complete, or awaiting-latencies (a kit to measure on the board)
    message: str
    kit: Path | None = None


class _AwaitingLatencies(Exception):
    def __init__(self, kit: Path) -> None:
        super().__init__(str(kit))
        self.kit = kit


def _cpu_matches(target: Target) -> str | None:
    """None where this CPU is the profile's architecture, else why not (CPU profiles are named by architecture)."""
    machine = platform.machine().lower()
    arm = machine in ("aarch64", "arm64")
    if ("arm" in target.name) == arm:
        return None
    return f"{target.name} is another CPU architecture than this {machine} machine"


def _gpu_mismatch(target: Target) -> str | None:
    """None where CUDA device 0 has the target's compute capability, else why not."""
    import torch

    if not torch.cuda.is_available():
        return "this machine has no CUDA GPU"
    here = torch.cuda.get_device_capability(0)
    if target.compute_capability is not None and tuple(here) != tuple(target.compute_capability):
        return (
            f"the GPU here ({torch.cuda.get_device_name(0)}, sm_{here[0]}{here[1]}) is not {target.name}'s "
            f"({target.sm})"
        )
    return None


def choose_measurement(target: Target, precision: str, requested: str = "auto") -> Measurement:
    """The target's backend here when this machine is the target, else the kit flow (or an error if 'here')."""
    if requested == "kit":
        return Measurement("kit", target.backend, "--measure kit: each round writes a kit for the board")
    if target.kind == "cpu":
        if precision != "fp32":
            raise EdgekitError(
                f"scale measures {target.name} in fp32 (int8 needs a calibrated Q/DQ model per candidate)"
            )
        reason = _cpu_matches(target)
        local = Measurement("here", "onnxruntime", f"{target.name} is this CPU: onnxruntime's CPU provider")
    else:
        from edgekit.board.backends.tensorrt_backend.runner import tensorrt_unavailable_reason

        if precision == "int8":
            raise EdgekitError("scale measures fp32 or fp16 (int8 needs a calibrated Q/DQ model per candidate)")
        reason = _gpu_mismatch(target)
        no_tensorrt = tensorrt_unavailable_reason()
        if reason is None and no_tensorrt is None:
            local = Measurement("here", "tensorrt", f"TensorRT runs here on {target.name}'s GPU")
        elif reason is None and target.kind == "desktop":
            local = Measurement("here", "torch", f"PyTorch CUDA on {target.name}'s GPU: {no_tensorrt}")
        else:
            reason = reason or f"TensorRT cannot run here ({no_tensorrt})"
    if reason is None:
        return local
    board_steps = (
        "rerun with --measure kit: each round writes a kit; on the board run `edgekit scale-measure KIT -o "
        "latencies.json`, then here `edgekit scale ... --resume --latencies latencies.json`"
    )
    if requested == "here":
        raise EdgekitError(f"{target.name} cannot be measured on this machine: {reason}; {board_steps}")
    return Measurement("kit", target.backend, f"{reason}: each round writes a kit for `edgekit scale-measure`")


def _classes(data: Path | None, input_size: tuple[int, int]) -> ClassSet:
    from edgekit.board.synthetic import SyntheticScenes
    from edgekit.data.datasets import open_dataset

    return SyntheticScenes(1, input_size).classes if data is None else open_dataset(data, "train").classes


class ScaleRun:
    """One scaling run: its settings, its ``family.json`` state, and the measuring and training it still needs."""

    def __init__(self, config: ScaleConfig) -> None:
        self.config = config
        self.target = load_target(config.target)
        choice = choose_precision(self.target, config.precision)
        if choice.substituted:  # e.g. --precision int8 on the Nano: said, not silently swapped
            logging.getLogger(__name__).warning("precision: %s", choice.reason)
        self.precision = choice.chosen
        self.input_size = config.input_size or self.target.input_size
        self.measurement = choose_measurement(self.target, self.precision, config.measure)
        self.classes = _classes(config.data, self.input_size)
        self.path = config.out_dir / FAMILY_FILE
        settings = {
            "target": self.target.name,
            "budget_ms": config.budget_ms,
            "input_size": list(self.input_size),
            "precision": self.precision,
            "proxy_seconds": config.proxy_seconds,
            "data": str(config.data) if config.data else "synthetic street scenes",
            "seed": config.seed,
            "max_steps": config.max_steps,
            "threads": config.threads,
            "batch_size": config.batch_size,
            "stop_rule": asdict(config.rule),
            "measurement": asdict(self.measurement),
        }
        self.state = self._load_or_create(settings)

    # ------------------------------------------------------------------------------------------------- state
    def _load_or_create(self, settings: dict[str, Any]) -> dict[str, Any]:
        out = self.config.out_dir
        if not self.config.resume:
            if out.exists() and any(out.iterdir()):
                raise EdgekitError(f"{out} exists and is not empty: continue it with --resume or give another -o")
            out.mkdir(parents=True, exist_ok=True)
            state: dict[str, Any] = {
                "schema": SCHEMA,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "settings": settings,
                "device": device_fingerprint() if self.measurement.where == "here" else None,
                "measured_by": self.measurement.why,
                "proxy_note": PROXY_NOTE,
                "latencies": {},
                "proxy": {},
                "kits": [],
                "steps": [],
            }
            write_json_atomic(self.path, state)
            return state
        if not self.path.is_file():
            raise EdgekitError(f"nothing to resume: {self.path} does not exist")
        state = json.loads(self.path.read_text())
        if state.get("schema") != SCHEMA:
            raise EdgekitError(f"{self.path} is not an edgekit scale state ({SCHEMA})")
        changed = [k for k in SETTINGS_CHECKED_ON_RESUME if state["settings"].get(k) != settings[k]]
        if changed:
            detail = ", ".join(f"{k} {state['settings'].get(k)!r} -> {settings[k]!r}" for k in changed)
            raise EdgekitError(f"--resume with other settings than {self.path} was started with: {detail}")
        return state

    def save(self) -> None:
        write_json_atomic(self.path, self.state)

    def latency_ms(self, arch: Arch) -> float | None:
        record = self.state["latencies"].get(arch.key)
        return None if record is None else float(record["latency_ms"]["p50_ms"])

    # ---------------------------------------------------------------------------------------------- latency
    def _onnx(self, model: str, kwargs: dict[str, Any], folder: Path, key: str) -> Path:
        """The candidate with random weights (latency does not depend on them) through ``edgekit export``."""
        from edgekit.export import convert_fp16, export_onnx

        fp32 = folder / f"{key}.onnx"
        if not fp32.is_file():
            checkpoint = random_checkpoint(model, len(self.classes), kwargs)
            export_onnx(checkpoint, fp32, input_size=self.input_size)
        if self.precision == "fp32":
            return fp32
        fp16 = folder / f"{key}-fp16.onnx"
        if not fp16.is_file():
            convert_fp16(fp32, fp16, tolerance=None)  # random weights: only the latency counts
        return fp16

    def _measure_here(self, networks: list[tuple[str, str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        """One group timed in turns (see ``time_interleaved``) on the target's backend here."""
        backend = self.measurement.backend
        if backend != "torch":
            onnx = {
                key: self._onnx(model, kwargs, self.config.out_dir / "onnx", key) for key, model, kwargs in networks
            }
            return measure_group(onnx, backend, self.precision, self.config.rule, self.config.threads)
        from edgekit.board.backends.torch_backend import TorchBackend
        from edgekit.models import build_model

        width, height = self.input_size
        opened = {
            key: TorchBackend(
                build_model(model, num_classes=len(self.classes), **kwargs).eval(), (1, 3, height, width),
                device="cuda", precision=self.precision, channels_last=True, cuda_graphs=True,  # type: ignore[arg-type]
            )
            for key, model, kwargs in networks
        }  # fmt: skip
        try:
            return time_interleaved(dict(opened), self.config.rule)
        finally:
            for candidate in opened.values():
                candidate.close()

    def ensure_latencies(self, networks: list[tuple[str, str, dict[str, Any]]], what: str) -> None:
        """Measure (key, model, kwargs) not yet measured, a group at a time, saving after each group; in the kit
        flow write them as a kit for the board instead."""
        todo = list({n[0]: n for n in networks if n[0] not in self.state["latencies"]}.values())  # one per key
        if not todo:
            return
        if self.measurement.where == "kit":
            raise _AwaitingLatencies(self._write_kit(todo))
        with events.task(f"{what}: latency", total=len(todo)) as work:
            for first in range(0, len(todo), GROUP_SIZE):
                group = todo[first : first + GROUP_SIZE]
                for key, record in self._measure_here(group).items():
                    self.state["latencies"][key] = {**record, "model": next(n[1] for n in group if n[0] == key),
                                                    "measured_on": "this machine"}  # fmt: skip
                self.save()
                work.advance(len(group))

    def _write_kit(self, networks: list[tuple[str, str, dict[str, Any]]]) -> Path:
        kit_id = uuid.uuid4().hex[:12]
        kit = self.config.out_dir / "kits" / f"kit-{len(self.state['kits']) + 1:02d}-{kit_id}"
        candidates = []
        for key, model, kwargs in networks:
            onnx = self._onnx(model, kwargs, kit, key)
            candidates.append({"key": key, "model": model, "config": kwargs, "onnx": onnx.name})
        write_json_atomic(
            kit / KIT_FILE,
            {
                "schema": KIT_SCHEMA,
                "kit_id": kit_id,
                "target": self.target.name,
                "backend": self.measurement.backend,
                "precision": self.precision,
                "input_size": list(self.input_size),
                "threads": self.config.threads,
                "workspace_mib": self.target.workspace_mib,
                "stop_rule": asdict(self.config.rule),
                "candidates": candidates,
            },
        )
        self.state["kits"].append({"kit_id": kit_id, "path": str(kit.relative_to(self.config.out_dir)),
                                   "keys": [c["key"] for c in candidates], "merged": False})  # fmt: skip
        self.save()
        return kit

    def merge_latencies(self, path: Path) -> int:
        """Take a board's latencies for a kit this run wrote; the board's fingerprint becomes the run's device."""
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise EdgekitError(f"cannot read latencies {path}: {exc}") from exc
        if document.get("schema") != LATENCIES_SCHEMA:
            raise EdgekitError(f"{path} is not an `edgekit scale-measure` output ({LATENCIES_SCHEMA})")
        kit = next((k for k in self.state["kits"] if k["kit_id"] == document.get("kit_id")), None)
        if kit is None:
            raise EdgekitError(f"{path} measured a kit this run did not write (kit {document.get('kit_id')})")
        absent = [key for key in kit["keys"] if key not in document["measured"]]
        if absent:
            raise EdgekitError(f"{path} lacks {len(absent)} of the kit's candidates (e.g. {absent[0]}): "
                               "run `edgekit scale-measure` again on the board to finish it")  # fmt: skip
        host = document["device"].get("hostname", "the board")
        for key, record in document["measured"].items():
            self.state["latencies"][key] = {**record, "measured_on": host}
        self.state["device"] = document["device"]
        kit["merged"] = True
        self.save()
        return len(document["measured"])

    # ---------------------------------------------------------------------------------------------- accuracy
    def proxy_miou(self, key: str, model: str, kwargs: dict[str, Any]) -> float:
        """Train ``key`` for the proxy budget (once: the score is kept in the state) and return its held-out mIoU."""
        done = self.state["proxy"].get(key)
        if done is not None:
            return float(done["miou"])
        from edgekit.train import TrainConfig, train

        folder = self.config.out_dir / "candidates" / key
        result = train(
            TrainConfig(
                model=model,
                data=self.config.data,
                out_dir=folder,
                input_size=self.input_size,
                epochs=10_000,  # the time budget ends every proxy run
                time_budget_s=self.config.proxy_seconds,
                batch_size=self.config.batch_size,
                class_weighting="none",  # ESPNet weights read 200 masks first: seconds of a short proxy budget
                num_workers=self.config.num_workers,
                seed=self.config.seed,
                threads=self.config.threads or None,
                model_kwargs=kwargs,
                overwrite=True,  # a candidate without a recorded score (interrupted) trains again from scratch
            )
        )
        self.state["proxy"][key] = {
            "miou": result.best_miou,
            "checkpoint": str(result.best.relative_to(self.config.out_dir)),
            "epochs": len(result.history),
            "seconds": self.config.proxy_seconds,
        }
        self.save()
        return result.best_miou

    def stats(self, key: str, model: str, kwargs: dict[str, Any]) -> tuple[int, int]:
        """Parameters and MACs at the run's input size, counted once per network and kept in the state."""
        counted = self.state.setdefault("counts", {}).get(key)
        if counted is None:
            from edgekit.models import build_model
            from edgekit.models.complexity import measure

            measured = measure(build_model(model, num_classes=len(self.classes), **kwargs), self.input_size)
            counted = self.state["counts"][key] = [measured.params, measured.macs]
        return int(counted[0]), int(counted[1])

    def describe(self, arch: Arch, proposal: Proposal | None = None) -> dict[str, Any]:
        params, macs = self.stats(arch.key, SCALED, arch.model_kwargs())
        record = self.state["latencies"][arch.key]
        entry: dict[str, Any] = {
            "key": arch.key,
            "config": arch.to_dict(),
            "params": params,
            "macs": macs,
            "latency_ms": record["latency_ms"]["p50_ms"],
            "latency_ci95_ms": record["p50_ci95_ms"],
            "latency_spread_ms": {k: record["latency_ms"][k] for k in ("min_ms", "p90_ms", "std_ms")},
            "fits_budget": record["latency_ms"]["p50_ms"] <= self.config.budget_ms,
            "miou": self.state["proxy"].get(arch.key, {}).get("miou"),
        }
        if proposal is not None:
            entry.update(operator=proposal.operator.name, step_length=proposal.step_length)
        return entry


def _network(arch: Arch) -> tuple[str, str, dict[str, Any]]:
    return arch.key, SCALED, arch.model_kwargs()


def run_scale(config: ScaleConfig) -> ScaleResult:
    """The whole procedure; Ctrl-C/SIGTERM leave ``family.json`` resumable and re-raise KeyboardInterrupt."""
    from edgekit.scale.report import write_reports

    run = ScaleRun(config)
    if config.latencies is not None:
        run.merge_latencies(config.latencies)
    try:
        with sigterm_as_interrupt():
            message = _search(run)
    except _AwaitingLatencies as waiting:
        return ScaleResult(
            run.path,
            "awaiting-latencies",
            f"latencies are measured on the board ({run.measurement.why}). Copy {waiting.kit} there and run "
            f"`edgekit scale-measure {waiting.kit.name} -o latencies.json`; then continue here with the same "
            f"command plus --resume --latencies latencies.json",
            waiting.kit,
        )
    write_reports(run.state, config.out_dir)
    return ScaleResult(run.path, "complete", message)


def _search(run: ScaleRun) -> str:
    config, state = run.config, run.state
    # The start is timed in turns with its one-step expansions: the first comparison shares one load.
    start_networks = [_network(TINY)] + [_network(op.apply(TINY, 1)) for op in OPERATORS]
    run.ensure_latencies(start_networks, "start")
    tiny_latency = run.latency_ms(TINY) or 0.0
    if tiny_latency > config.budget_ms:
        raise EdgekitError(
            f"the budget {config.budget_ms:g} ms is below the tiny start network's measured latency "
            f"{tiny_latency:.2f} ms on {run.target.name} ({run.measurement.backend}): give a larger --budget-ms"
        )
    run.proxy_miou(*_network(TINY))
    state["start"] = run.describe(TINY)
    parent = TINY
    steps: list[dict[str, Any]] = []
    stop = f"--max-steps {config.max_steps} reached"
    for index in range(1, config.max_steps + 1):
        lookahead = config.kit_lookahead if run.measurement.where == "kit" else 1
        plan = plan_step(parent, run.latency_ms, config.budget_ms, lookahead)
        while plan.missing:
            run.ensure_latencies([_network(a) for a in plan.missing], f"step {index}")
            plan = plan_step(parent, run.latency_ms, config.budget_ms, lookahead)
        fitting = [p for p in plan.proposals if (run.latency_ms(p.arch) or 0.0) <= config.budget_ms]
        step: dict[str, Any] = {
            "step": index,
            "parent": parent.key,
            "one_step_max_latency_ms": plan.one_step_max_ms,
            "target_latency_ms": plan.target_ms,
            "candidates": [],
            "chosen": None,
        }
        steps.append(step)
        state["steps"] = steps
        if not fitting:
            stop = f"step {index}: no candidate fits the {config.budget_ms:g} ms budget"
            step["candidates"] = [run.describe(p.arch, p) for p in plan.proposals]
            break
        with events.task(f"step {index}: proxy training", total=len(fitting)) as work:
            for proposal in fitting:
                run.proxy_miou(*_network(proposal.arch))
                work.advance()
        parent_miou = float(state["proxy"][parent.key]["miou"])
        parent_latency = run.latency_ms(parent) or 0.0
        candidates = [run.describe(p.arch, p) for p in plan.proposals]
        for candidate in candidates:
            if candidate["miou"] is None:
                continue
            if candidate["latency_ms"] <= parent_latency:
                candidate["not_chosen_because"] = (
                    f"measured no slower than its parent ({candidate['latency_ms']:.2f} vs {parent_latency:.2f} ms): "
                    "a larger network is not faster, so the measurement is noise"
                )
                continue
            candidate["slope"] = slope(candidate["miou"], candidate["latency_ms"], parent_miou, parent_latency)
        step["candidates"] = candidates
        eligible = [i for i, c in enumerate(candidates) if "slope" in c]
        if not eligible:
            stop = f"step {index}: every candidate that fits measured no slower than its parent"
            break
        best = max(eligible, key=lambda i: candidates[i]["slope"])
        step["chosen"] = best
        parent = plan.proposals[best].arch
        run.save()
    state["stop_reason"] = stop
    final_key = parent.key
    final = config.out_dir / FINAL_CHECKPOINT
    shutil.copyfile(config.out_dir / state["proxy"][final_key]["checkpoint"], final)
    state["final"] = {"key": final_key, "config": parent.to_dict(), "trained": f"proxy ({config.proxy_seconds:g} s)"}
    if config.finetune_seconds > 0:
        state["final"].update(_finetune(run, final))
    state["checkpoint"] = FINAL_CHECKPOINT
    for name in config.compare:
        run.ensure_latencies([(name, name, {})], name)
        params, macs = run.stats(name, name, {})
        state.setdefault("compare", {})[name] = {
            "latency_ms": run.state["latencies"][name]["latency_ms"]["p50_ms"],
            "latency_ci95_ms": run.state["latencies"][name]["p50_ci95_ms"],
            "miou": run.proxy_miou(name, name, {}),
            "params": params,
            "macs": macs,
        }
    state["complete"] = True
    run.save()
    return f"{len(steps)} steps, {stop}; final network {final_key} -> {final}"


def _finetune(run: ScaleRun, final: Path) -> dict[str, Any]:
    """Train the chosen network longer from its proxy weights; final.pt becomes the fine-tuned best."""
    from edgekit.train import TrainConfig, train

    config = run.config
    result = train(
        TrainConfig(
            model=SCALED,
            data=config.data,
            out_dir=config.out_dir / "finetune",
            input_size=run.input_size,
            epochs=10_000,
            time_budget_s=config.finetune_seconds,
            batch_size=config.batch_size,
            num_workers=config.num_workers,
            seed=config.seed,
            threads=config.threads or None,
            init_checkpoint=final,
            overwrite=True,  # a resumed run fine-tunes again from the proxy weights
        )
    )
    shutil.copyfile(result.best, final)
    return {"trained": f"proxy ({config.proxy_seconds:g} s) + fine-tune ({config.finetune_seconds:g} s)",
            "finetuned_miou": result.best_miou}  # fmt: skip
