"""The sidecar beside every engine edgekit builds: a JSON record of what it was built for (TensorRT release, GPU,
precision, where each layer runs), written by the builder and checked by the runner before deserialising.
Board code: runs on Python 3.6.
"""

import json
from pathlib import Path
from typing import Any, Dict, Optional

from edgekit.errors import EdgekitError

SIDECAR_SUFFIX = ".json"


def sidecar_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def read_sidecar(engine_path: Path) -> Optional[Dict[str, Any]]:
    """The sidecar ``build_engine`` wrote beside an engine (what it was built for), or None where there is none."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise EdgekitError(f"{path} is corrupt ({exc}); rebuild the engine with `edgekit compile`") from exc
    if not isinstance(data, dict):
        raise EdgekitError(f"{path} is not an engine sidecar; rebuild the engine with `edgekit compile`")
    return data
