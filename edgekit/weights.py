"""The authors' released Cityscapes weights, loaded into the zoo networks with their own preprocessing.

ESPNet (``sacmehta/ESPNet`` ``pretrained/{decoder,encoder}/espnet_p_2_q_*.pth``) and ESPNetv2 (``sacmehta/EdgeNets``
``model/segmentation/model_zoo/espnetv2/espnetv2_s_*_city_*.pth``) load with no missing or unexpected keys. What a
file does not say by its keys, the adapter beside each network (``describe_official``) reads from its name, and
every choice made that way is recorded in the checkpoint's ``meta`` and stated by the CLI. This module sits on the
checkpoint side: it imports the zoo, the zoo never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekit.board.bundle import sha256_file
from edgekit.board.classes import cityscapes_classes
from edgekit.board.preprocess import Preprocessing
from edgekit.checkpoint import FORMAT, Checkpoint, load_state_dict_checked
from edgekit.errors import EdgekitError
from edgekit.models import espnet, espnetv2
from edgekit.models.registry import OfficialModel, check_input_size, get_spec

Describe = Callable[[str, Path, dict[str, torch.Tensor]], OfficialModel]

# Zoo name -> the adapter beside its network that reads the released files.
_ADAPTERS: dict[str, Describe] = {
    **dict.fromkeys(espnet.OFFICIAL_SOURCES, espnet.describe_official),
    **dict.fromkeys(espnetv2.OFFICIAL_NAMES.values(), espnetv2.describe_official),
}
OFFICIAL_MODELS = tuple(_ADAPTERS)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a released ``.pth`` (legacy or zip format), without any ``module.`` (DataParallel) prefix."""
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
    return espnetv2.identify_official(state_dict) or espnet.identify_official(state_dict)


def _load(name: str, path: str | Path, input_size: tuple[int, int] | None) -> tuple[nn.Module, OfficialModel]:
    if name not in _ADAPTERS:
        known = ", ".join(OFFICIAL_MODELS)
        raise EdgekitError(f"no official Cityscapes weights are known for {name!r}; choose one of {known}")
    path = Path(path)
    state_dict = read_state_dict(path)
    official = _ADAPTERS[name](name, path, state_dict)
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
    path = Path(path)
    if input_size is not None:
        check_input_size(name, input_size)
    model, official = _load(name, path, input_size)
    return Checkpoint(
        model_name=name,
        model_kwargs=dict(official.kwargs),
        classes=cityscapes_classes(),
        preprocessing=official.preprocessing,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        meta={
            "official_file": path.name,
            "official_sha256": sha256_file(path),
            "official_source": official.source,
            "import_notes": list(official.notes),
        },
    )
