"""The edgekit checkpoint: weights plus everything a later stage needs to use them correctly.

A checkpoint carries the model name and constructor arguments, the class names and palette, and the
preprocessing, so export, calibration and the runner never guess how the network expects its input.
Training adds its optimizer/scheduler state under ``training`` so that a resume is exact.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from edgekit.board.classes import ClassSet
from edgekit.board.outputs import medium_failure
from edgekit.board.preprocess import Preprocessing
from edgekit.errors import EdgekitError
from edgekit.models import build_model, check_input_size

FORMAT = "edgekit-checkpoint"
VERSION = 1

E = TypeVar("E", bound=BaseException)


@dataclass
class Checkpoint:
    model_name: str
    model_kwargs: dict[str, Any]
    classes: ClassSet
    preprocessing: Preprocessing
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)  # provenance: official file, metrics, ...
    training: dict[str, Any] | None = None  # optimizer, scheduler, epoch: present only for resumable checkpoints

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def build(self) -> nn.Module:
        """The network with these weights, in eval mode."""
        model = build_model(self.model_name, num_classes=self.num_classes, **self.model_kwargs)
        load_state_dict_checked(model, self.state_dict, f"checkpoint of {self.model_name}")
        return model.eval()

    def check_input_size(self, what: str) -> None:
        """The saved input size is one the network takes (older import-weights wrote any size it was given)."""
        check_input_size(self.model_name, self.preprocessing.input_size, what)

    def preprocessing_at(self, input_size: tuple[int, int] | None) -> Preprocessing:
        """The saved preprocessing, at ``input_size`` (WxH) when one is given, checked against the network."""
        preprocessing = self.preprocessing if input_size is None else self.preprocessing.with_size(*input_size)
        check_input_size(self.model_name, preprocessing.input_size)
        return preprocessing

    def save(self, path: str | Path) -> Path:
        """Write atomically: an interrupted save never leaves a truncated checkpoint under the final name."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model_name,
            "model_kwargs": self.model_kwargs,
            "classes": self.classes.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "state_dict": self.state_dict,
            "meta": self.meta,
            "training": self.training,
        }
        tmp = path.with_name(path.name + ".partial")
        try:
            # through our own handle: torch's path-based writer reports a full disk as "unexpected pos"
            with tmp.open("wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            interrupt = _in_chain(exc, KeyboardInterrupt)
            if interrupt is not None and interrupt is not exc:
                # Ctrl-C/SIGTERM inside torch's zip writer comes out of its __exit__ as "unexpected pos": it is
                # still the interrupt (the CLI exits 130/143), not a traceback
                raise interrupt from None
            cause = _in_chain(exc, OSError)  # torch reports a failed write as RuntimeError("unexpected pos ...")
            if cause is None or not isinstance(exc, (OSError, RuntimeError)):
                raise
            failure = medium_failure(
                cause, path.parent, f"{path} was not written (the previous one, if any, is intact)"
            )
            if failure is None:
                raise EdgekitError(f"cannot write checkpoint {path}: {cause.strerror or cause}") from exc
            raise failure from exc
        return path

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        path = Path(path)
        if not path.is_file():
            raise EdgekitError(f"checkpoint not found: {path}")
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else gets torch's essay
            raise EdgekitError(f"{path} is not an edgekit checkpoint: {_what_file_is(path)}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for truncated/corrupt archives
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise EdgekitError(
                f"cannot read checkpoint {path} ({exc.__class__.__name__}: {first_line}); it is truncated or corrupt"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise EdgekitError(
                f"{path} is not an edgekit checkpoint; official weights are imported with "
                "`edgekit import-weights --model NAME --official FILE -o CKPT`"
            )
        return cls(
            model_name=payload["model"],
            model_kwargs=dict(payload.get("model_kwargs") or {}),
            classes=ClassSet.from_dict(payload["classes"]),
            preprocessing=Preprocessing.from_dict(payload["preprocessing"]),
            state_dict=payload["state_dict"],
            meta=dict(payload.get("meta") or {}),
            training=payload.get("training"),
        )


def _in_chain(exc: BaseException, kind: type[E]) -> E | None:
    """The exception of ``kind`` that ``exc`` is, or was raised while handling (torch wraps write errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is an edgekit checkpoint (the only kind of file a checkpoint may replace)."""
    try:
        Checkpoint.load(path)
    except EdgekitError:
        return False
    return True


def _what_file_is(path: Path) -> str:
    """A guess at what a file that is not a torch archive is, for the error message."""
    with path.open("rb") as handle:
        head = handle.read(64)
    if path.suffix == ".onnx" or (head.startswith(b"\x08") and b"pytorch" in head):
        return "it is an ONNX model (`edgekit run --onnx` runs it; this needs the edgekit .pt/.ckpt checkpoint)"
    if head.startswith(b"\x80"):
        return "it is a legacy pickle, not made by edgekit (official weights: `edgekit import-weights`)"
    if not head:
        return "the file is empty"
    return "not a PyTorch file (it is truncated, or something else altogether)"


def load_state_dict_checked(model: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict) with an error that lists the differing keys and shapes instead of a traceback."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches (e.g. {'; '.join(mismatched[:3])})")
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise EdgekitError(f"{what} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)
