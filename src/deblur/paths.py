"""Where the suite's files live."""

from __future__ import annotations

from pathlib import Path

#: Repository root (the suite is installed in editable mode from its checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The Hydra config tree.
CONF_DIR = REPO_ROOT / "conf"
