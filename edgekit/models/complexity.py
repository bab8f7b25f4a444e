"""A network's complexity: parameter and multiply-add counts measured on the torch module itself (forward hooks),
not copied from papers. (``edgekit.board.stats`` is something else: latency statistics of a run.)"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelStats:
    params: int
    macs: int  # multiply-adds of convolutions, transposed convolutions and linear layers for one image

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() // output.shape[0] * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        x = inputs[0]
        return x.numel() // x.shape[0] * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() // output.shape[0] * module.in_features
    return 0


def measure(model: nn.Module, input_size: tuple[int, int]) -> ModelStats:
    """Count parameters and per-image MACs at ``input_size`` (width, height) with one forward pass."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, inputs, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size[1], input_size[0]))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return ModelStats(params=count_params(model), macs=total)
