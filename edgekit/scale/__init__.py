"""LPS-Net's progressive, latency-aware scaling on the device that will run the network (``edgekit scale``)."""

from edgekit.scale.search import ScaleConfig, ScaleResult, run_scale
from edgekit.scale.space import OPERATORS, TINY, Arch, plan_step, slope

__all__ = ["OPERATORS", "TINY", "Arch", "ScaleConfig", "ScaleResult", "plan_step", "run_scale", "slope"]
