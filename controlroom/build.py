"""`make build`: each deployable's folder under build/, as Cloud Functions and the image want it.

Cloud Functions take a folder with main.py and requirements.txt and accept local packages
only inside it, so controlroom/ is copied into each; requirements.txt is written from
pyproject.toml's dependencies (one list, never kept twice by hand).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("webhook", "persist", "subscriptions", "archive")


def requirements() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return "\n".join(project["dependencies"]) + "\n"


def build(out: Path = ROOT / "build") -> list[Path]:
    if out.exists():
        shutil.rmtree(out)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "stack")
    made = []
    for name in FUNCTIONS:
        target = out / name
        shutil.copytree(ROOT / "functions" / name, target, ignore=ignore)
        shutil.copytree(ROOT / "controlroom", target / "controlroom", ignore=ignore)
        (target / "requirements.txt").write_text(requirements())
        made.append(target)
    image = out / "realtime"
    shutil.copytree(ROOT / "controlroom", image / "controlroom", ignore=ignore)
    shutil.copytree(
        ROOT / "realtime",
        image / "realtime",
        ignore=shutil.ignore_patterns("__pycache__", "Dockerfile"),
    )
    (image / "requirements.txt").write_text(requirements())
    made.append(image)
    return made


if __name__ == "__main__":
    for path in build():
        print(f"built {path.relative_to(ROOT)}")
    sys.exit(0)
