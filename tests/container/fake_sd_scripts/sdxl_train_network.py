"""sd-scripts has one script per family; the stand-in for all is train_network.py (same console
output, same TOML handling), run here under this script's name, whose options it checks."""

from __future__ import annotations

import runpy
from pathlib import Path

runpy.run_path(
    str(Path(__file__).with_name("train_network.py")),
    init_globals={"STANDS_IN_FOR": Path(__file__).stem},
    run_name="__main__",
)
