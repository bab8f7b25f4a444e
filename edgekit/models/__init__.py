"""The model zoo: one file per network, all reachable by name through the registry."""

from edgekit.models import espnet as espnet
from edgekit.models import espnetv2 as espnetv2
from edgekit.models import litehrnet as litehrnet
from edgekit.models import lpsnet as lpsnet
from edgekit.models.registry import ModelSpec, available_models, build_model, check_input_size, get_spec, register

__all__ = [
    "ModelSpec",
    "available_models",
    "build_model",
    "check_input_size",
    "get_spec",
    "register",
]
