"""The import contracts in pyproject.toml hold today, and each one fails on a wrong import.

Each case copies the product code into a throw-away folder, adds one deliberately wrong
import and runs lint-imports there: a contract that passed anything would prove nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = ("layers", "no-dev", "pure-core", "no-arrow-outside-archive")


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy.mkdir()
    for package in ("controlroom", "realtime", "functions"):
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _lint(copy: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for c in contracts for arg in ("--contract", c)]
    # the copy first on the path, so the installed (editable) package is not what gets read
    # and no coverage measurement in the linter: it would report the copy's files, never
    # run, as product code at 0% (coverage and pytest-cov follow subprocesses through these)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "COV_CORE_"))}
    env["PYTHONPATH"] = str(copy)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *selected],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_contract_holds_on_the_untouched_code(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("contract", "module", "wrong_import"),
    [
        # the core reaching up into an adapter: room names from the database module again
        ("layers", "controlroom/core/rooms.py", "from controlroom.adapters import db"),
        ("layers", "controlroom/adapters/ledger.py", "from controlroom.usecases import audit"),
        ("layers", "controlroom/usecases/ingest.py", "from controlroom import services"),
        ("no-dev", "realtime/app.py", "from controlroom.dev import twitchsim"),
        ("no-dev", "functions/webhook/main.py", "from controlroom.dev import devkeys"),
        ("no-dev", "controlroom/services.py", "from controlroom.dev.stack import LocalStack"),
        ("no-dev", "controlroom/edge.py", "from controlroom.dev import seed"),
        ("pure-core", "controlroom/core/events.py", "import psycopg"),
        ("pure-core", "controlroom/core/roles.py", "import jwt"),
        ("pure-core", "controlroom/core/eventsub.py", "from google.cloud import firestore"),
        # the service reaching the archive's Arrow stack through a use case (what broke the
        # realtime image once: it does not install pyarrow)
        (
            "no-arrow-outside-archive",
            "controlroom/usecases/companies.py",
            "from controlroom.usecases import archive",
        ),
        ("no-arrow-outside-archive", "functions/webhook/main.py", "import pyarrow"),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    tmp_path: Path, contract: str, module: str, wrong_import: str
) -> None:
    copy = _copy(tmp_path)
    target = copy / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # deliberately wrong\n")

    result = _lint(copy, contract)

    assert result.returncode != 0, result.stdout + result.stderr
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    dotted = module.removesuffix(".py").replace("/", ".")
    assert dotted in result.stdout  # the report names the offending module
