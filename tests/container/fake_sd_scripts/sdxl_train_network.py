"""sd-scripts has one script per family; the stand-in for both is train_network.py (same
console output, same TOML keys, same LoRA naming), run here under this script's name."""

from __future__ import annotations

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).with_name("train_network.py")), run_name="__main__")
