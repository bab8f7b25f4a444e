"""Figures published by the papers and toolkits, with their conditions and source, for the report to show
beside (never merged with) our measurements. Collected in ../shared/reference/*.md; nothing here is measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PublishedFigure:
    model: str  # zoo name where the network is in the zoo
    device: str
    size: str  # network input, WxH
    precision: str
    framework: str
    fps: float
    source: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PUBLISHED: tuple[PublishedFigure, ...] = (
    PublishedFigure(
        "espnet", "NVIDIA TitanX (desktop)", "1024x512", "fp32", "PyTorch 0.3 eager, batch 1", 112.0,
        "ESPNet README and abstract (Mehta et al., ECCV 2018); Cityscapes benchmark entry: 0.0089 s on TitanX",
    ),
    PublishedFigure(
        "espnet", "NVIDIA Jetson TX2 (GPU 1300 MHz)", "1024x512", "fp32", "PyTorch eager, batch 1", 9.0,
        "ESPNet README ('9 FPS on TX2'); ECCV'18 poster bar chart reads ~9.1 FPS at 1300 MHz",
    ),
    PublishedFigure(
        "lpsnet-s", "NVIDIA GTX 1080Ti", "2048x1024", "fp32", "TensorRT 7.1.3.4, batch 1", 413.5,
        "LPS-Net abstract (Zhang et al., CVPR 2022) and YihengZhang-CV/LPS-Net latency.py protocol",
        "full 1024x2048 input, resized inside the network (768x1536 + 256x512 paths)",
    ),
    PublishedFigure(
        "lpsnet-l", "NVIDIA GTX 1080Ti", "2048x1024", "fp32", "TensorRT 7.1.3.4, batch 1", 151.8,
        "first author in YihengZhang-CV/LPS-Net issue #3",
    ),
    PublishedFigure(
        "fcn-resnet18 (jetson-inference)", "NVIDIA Jetson Nano (MAX-N)", "512x256", "fp16",
        "TensorRT via jetson-inference, JetPack 4.2.1", 48.0,
        "dusty-nv/jetson-inference docs/segnet-console-2.md (trtexec, network only)",
    ),
    PublishedFigure(
        "fcn-resnet18 (jetson-inference)", "NVIDIA Jetson Nano (MAX-N)", "1024x512", "fp16",
        "TensorRT via jetson-inference, JetPack 4.2.1", 12.0,
        "dusty-nv/jetson-inference docs/segnet-console-2.md (trtexec, network only)",
    ),
    PublishedFigure(
        "fcn-resnet18 (jetson-inference)", "NVIDIA Jetson AGX Xavier (MAX-N)", "1024x512", "fp16",
        "TensorRT via jetson-inference, JetPack 4.2.1", 175.0,
        "dusty-nv/jetson-inference docs/segnet-console-2.md (trtexec, network only)",
    ),
)  # fmt: skip
