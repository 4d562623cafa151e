"""`make build`: each deployable's folder under build/, as Cloud Functions and the image want it.

Cloud Functions take a folder with main.py and requirements.txt and accept local packages
only inside it, so controlroom/ is copied into each, without the development tooling
(`DEV_MODULES`). Each requirements.txt is the deployable's lock, requirements/<name>.txt:
only the packages its code imports, every version pinned and every file hashed, written by
`make lock` from pyproject.toml's extra of the same name.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
FUNCTIONS = ("webhook", "persist", "subscriptions", "archive", "pulse", "notify")
DEPLOYABLES = (*FUNCTIONS, "realtime")
# controlroom's packages that only development uses: never shipped.
DEV_MODULES = ("dev",)
_CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")


def requirements(deployable: str) -> str:
    """The deployable's pinned and hashed requirements, as its bundle installs them."""
    return (LOCKS / f"{deployable}.txt").read_text()


def _product_only(package: Path) -> Callable[[str, list[str]], set[str]]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
        if Path(directory) == package:
            skipped |= {n for n in names if n.removesuffix(".py") in DEV_MODULES}
        return skipped

    return ignore


def _copy_package(name: str, target: Path) -> None:
    source = ROOT / name
    shutil.copytree(source, target / name, ignore=_product_only(source))


def build(out: Path = ROOT / "build") -> list[Path]:
    if out.exists():
        shutil.rmtree(out)
    made = []
    for name in FUNCTIONS:
        target = out / name
        shutil.copytree(ROOT / "functions" / name, target, ignore=_CACHES)
        _copy_package("controlroom", target)
        (target / "requirements.txt").write_text(requirements(name))
        made.append(target)
    image = out / "realtime"
    _copy_package("controlroom", image)
    shutil.copytree(
        ROOT / "realtime",
        image / "realtime",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "Dockerfile"),
    )
    (image / "requirements.txt").write_text(requirements("realtime"))
    made.append(image)
    return made


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


if __name__ == "__main__":
    for path in build():
        packages = sum(1 for line in requirements(path.name).splitlines() if line[:1].isalnum())
        print(f"built {path.relative_to(ROOT)} ({_size(path) // 1024} KiB, {packages} packages)")
    sys.exit(0)
