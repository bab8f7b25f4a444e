"""The wheel carries the device profiles and calibration definitions, which the design keeps at the top of the
tree (targets/, calibration/), as package data under edgekit/_data/: an installed edgekit lists every profile."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_FOLDERS = ("targets", "calibration")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        for name in DATA_FOLDERS:
            destination = Path(self.build_lib) / "edgekit" / "_data" / name
            destination.mkdir(parents=True, exist_ok=True)
            for source in sorted(Path(name).glob("*.yaml")):
                shutil.copy2(source, destination / source.name)


setup(cmdclass={"build_py": BuildWithData})
