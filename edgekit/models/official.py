"""The authors' released Cityscapes weights, loaded into the zoo networks with their own preprocessing.

ESPNet (``sacmehta/ESPNet`` ``pretrained/{decoder,encoder}/espnet_p_2_q_*.pth``) and ESPNetv2 (``sacmehta/EdgeNets``
``model/segmentation/model_zoo/espnetv2/espnetv2_s_*_city_*.pth``) load with no missing or unexpected keys. What a
file does not say by its keys is read from its name (the 512x256 and 1024x512 ESPNetv2 files have identical
shapes), and every choice made that way is recorded in the checkpoint's ``meta`` and stated by the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from edgekit.board.bundle import sha256_file
from edgekit.board.classes import cityscapes_classes
from edgekit.board.preprocess import ESPNET_CITYSCAPES, IMAGENET, Preprocessing
from edgekit.errors import EdgekitError
from edgekit.models.espnetv2 import CHANNELS
from edgekit.models.registry import check_input_size, get_spec

if TYPE_CHECKING:
    from edgekit.checkpoint import Checkpoint

# edgekit.checkpoint imports this package (build_model), so this module imports it inside the functions.

ESPNETV2_NAMES = {s: f"espnetv2-s{s}" for s in (0.5, 1.0, 1.5, 2.0)}
OFFICIAL_MODELS = ("espnet", "espnet-c", *ESPNETV2_NAMES.values())
SOURCES = {
    "espnet": "sacmehta/ESPNet pretrained/decoder (test/Model.py layout)",
    "espnet-c": "sacmehta/ESPNet pretrained/encoder (ESPNet_Encoder)",
    "espnetv2": "sacmehta/EdgeNets model/segmentation/model_zoo/espnetv2",
}
_SIZE_IN_NAME = re.compile(r"(\d+)x(\d+)")
_Q_IN_NAME = re.compile(r"_p_(\d+)_q_(\d+)")


@dataclass(frozen=True)
class OfficialModel:
    """A zoo network as an official file describes it, with how each setting was found."""

    name: str
    kwargs: dict[str, Any]
    preprocessing: Preprocessing
    notes: tuple[str, ...]  # one line per setting and where it came from


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a released ``.pth`` (legacy or zip format), without any ``module.`` (DataParallel) prefix."""
    from edgekit.checkpoint import FORMAT

    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"official weight file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated archives raise EOFError, RuntimeError, UnpicklingError, ...
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise EdgekitError(
            f"cannot read {path}: truncated or corrupt weight file ({exc.__class__.__name__}: {detail}); "
            "download it again"
        ) from exc
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        raise EdgekitError(f"{path} is already an edgekit checkpoint; use it directly with --checkpoint")
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not payload or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise EdgekitError(f"{path} does not hold a state dict of tensors (got {type(payload).__name__})")
    return {key.removeprefix("module."): value for key, value in payload.items()}


def identify(state_dict: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]] | None:
    """Which official network these keys and shapes belong to (name and constructor kwargs), or None."""
    if "base_net.level2_0.act.weight" in state_dict:
        width = state_dict["base_net.level2_0.act.weight"].shape[0]
        scale = next((s for s, channels in CHANNELS.items() if channels[1] == width), None)
        return (ESPNETV2_NAMES[scale], {"s": scale}) if scale in ESPNETV2_NAMES else None
    for prefix, name in (("encoder.", "espnet"), ("", "espnet-c")):
        if f"{prefix}level2_0.c1.conv.weight" in state_dict:
            p, q = _count_blocks(state_dict, f"{prefix}level2."), _count_blocks(state_dict, f"{prefix}level3.")
            return name, {"p": p, "q": q}
    return None


def _count_blocks(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    """Number of ModuleList entries under ``prefix`` (``level3.0.``, ``level3.1.``, ...)."""
    return len({key[len(prefix) :].split(".")[0] for key in state_dict if key.startswith(prefix)})


def describe(name: str, path: Path, state_dict: dict[str, torch.Tensor]) -> OfficialModel:
    """Constructor kwargs and preprocessing for ``name`` from the file's shapes, then its name, then defaults."""
    spec = get_spec(name)
    found = identify(state_dict)
    notes: list[str] = []
    kwargs = dict(spec.kwargs)
    if name in ("espnet", "espnet-c"):
        if found is not None and found[0] == name:
            kwargs.update(found[1])
            notes.append(f"p={kwargs['p']}, q={kwargs['q']}: counted from the file's ESP modules")
        elif match := _Q_IN_NAME.search(path.name):
            kwargs.update(p=int(match[1]), q=int(match[2]))
            notes.append(f"p={kwargs['p']}, q={kwargs['q']}: from the file name")
        else:
            notes.append(f"p={kwargs['p']}, q={kwargs['q']}: defaults (neither the keys nor the file name tell)")
        return OfficialModel(name, kwargs, ESPNET_CITYSCAPES, tuple(notes))
    notes.append(f"s={kwargs['s']}: from the model name")
    if match := _SIZE_IN_NAME.search(path.name):
        size = (int(match[1]), int(match[2]))
        notes.append(f"input {size[0]}x{size[1]}: from the file name (the size these weights were trained at)")
    else:
        size = spec.default_input_size
        notes.append(
            f"input {size[0]}x{size[1]}: default; the file name has no WxH and the 512x256 and 1024x512 weights "
            "have the same shapes (pass --input-size to choose)"
        )
    return OfficialModel(name, kwargs, IMAGENET.with_size(*size), tuple(notes))


def _load(name: str, path: str | Path, input_size: tuple[int, int] | None) -> tuple[nn.Module, OfficialModel]:
    from edgekit.checkpoint import load_state_dict_checked

    if name not in OFFICIAL_MODELS:
        known = ", ".join(OFFICIAL_MODELS)
        raise EdgekitError(f"no official Cityscapes weights are known for {name!r}; choose one of {known}")
    path = Path(path)
    state_dict = read_state_dict(path)
    official = describe(name, path, state_dict)
    if input_size is not None:
        official = replace(
            official,
            preprocessing=official.preprocessing.with_size(*input_size),
            notes=(*official.notes, f"input {input_size[0]}x{input_size[1]}: chosen by the caller"),
        )
    classes = cityscapes_classes()
    model = get_spec(name).build(num_classes=len(classes), **official.kwargs)
    try:
        load_state_dict_checked(model, _with_bn_counters(model, state_dict), f"the weights in {path.name}")
    except EdgekitError as exc:
        found = identify(state_dict)
        if found is not None and found != (name, official.kwargs):  # say what the file is, then what was asked
            settings = ", ".join(f"{k}={v}" for k, v in found[1].items())
            raise EdgekitError(
                f"{path.name} holds {found[0]} weights ({settings}), not {name}: pass --model {found[0]} ({exc})"
            ) from None
        raise EdgekitError(f"{exc} (asked for the {len(classes)}-class {name})") from None
    return model.eval(), official


def _with_bn_counters(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the BatchNorm ``num_batches_tracked`` counters that files saved before PyTorch 0.4.1 (ESPNet's) lack.

    PyTorch itself fills them with 0 for such files; only the counters are filled, any other gap stays an error.
    """
    counters = {
        key: torch.tensor(0, dtype=torch.long)
        for key in model.state_dict()
        if key.endswith(".num_batches_tracked") and key not in state_dict
    }
    return {**state_dict, **counters} if counters else state_dict


def load_official(
    name: str, path: str | Path, input_size: tuple[int, int] | None = None
) -> tuple[nn.Module, Preprocessing]:
    """The zoo network ``name`` with the official weights in ``path``, in eval mode, and the authors' preprocessing.

    The preprocessing turns an image file (``.load(path)``) or an HxWx3 uint8 BGR array (``__call__``) into the
    1x3xHxW float input; ``input_size`` (width, height) overrides the size the weights were trained at.
    """
    model, official = _load(name, path, input_size)
    return model, official.preprocessing


def import_official(name: str, path: str | Path, input_size: tuple[int, int] | None = None) -> Checkpoint:
    """An edgekit checkpoint from official weights: Cityscapes classes, official preprocessing, provenance."""
    from edgekit.checkpoint import Checkpoint

    path = Path(path)
    if input_size is not None:
        check_input_size(name, input_size)
    model, official = _load(name, path, input_size)
    family = "espnetv2" if name.startswith("espnetv2") else name
    return Checkpoint(
        model_name=name,
        model_kwargs=dict(official.kwargs),
        classes=cityscapes_classes(),
        preprocessing=official.preprocessing,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        meta={
            "official_file": path.name,
            "official_sha256": sha256_file(path),
            "official_source": SOURCES[family],
            "import_notes": list(official.notes),
        },
    )
