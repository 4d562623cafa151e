"""The dashboard's generated API types (tools/api_types.py): current, and their check bites."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_types", ROOT / "tools" / "api_types.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


api_types = _load()


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    files: dict[Path, str] = api_types.generated()
    return files


@pytest.fixture
def check(generated: dict[Path, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """The command's --check against the given files, with the generation made once."""
    monkeypatch.setattr(api_types, "generated", lambda: generated)

    def run(document: Path, schema: Path) -> int:
        code: int = api_types.main(
            ["--check", "--document", str(document), "--schema", str(schema)]
        )
        return code

    return run


@pytest.fixture
def copies(tmp_path: Path) -> Iterator[dict[Path, Path]]:
    """Throw-away copies of the committed files, to edit."""
    paths = {}
    for committed in (api_types.DOCUMENT, api_types.SCHEMA):
        paths[committed] = tmp_path / committed.name
        shutil.copyfile(committed, paths[committed])
    yield paths


def test_the_committed_files_are_what_generation_makes(generated: dict[Path, str]) -> None:
    committed = {path: path for path in generated}
    assert api_types.stale(generated, committed) == [], "run `python tools/api_types.py`"


def test_the_document_is_the_served_one(generated: dict[Path, str]) -> None:
    document = generated[api_types.DOCUMENT]
    assert '"/api/me"' in document and '"MeOut"' in document
    assert "MeOut: {" in generated[api_types.SCHEMA]


def test_an_edited_schema_is_stale(
    generated: dict[Path, str],
    copies: dict[Path, Path],
    check: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    schema = copies[api_types.SCHEMA]
    schema.write_text(
        schema.read_text().replace("twitch_login: string;", "twitch_login: number;", 1)
    )
    problems = api_types.stale(generated, copies)
    assert len(problems) == 1 and "-            twitch_login: number;" in problems[0]

    assert check(copies[api_types.DOCUMENT], schema) == 1
    assert "stale: run `python tools/api_types.py`" in capsys.readouterr().err


def test_an_edited_document_is_stale(generated: dict[Path, str], copies: dict[Path, Path]) -> None:
    document = copies[api_types.DOCUMENT]
    document.write_text(document.read_text().replace('"/api/me"', '"/api/myself"', 1))
    assert len(api_types.stale(generated, copies)) == 1


def test_a_missing_file_is_stale(generated: dict[Path, str], copies: dict[Path, Path]) -> None:
    copies[api_types.SCHEMA].unlink()
    assert len(api_types.stale(generated, copies)) == 1


def test_check_passes_on_untouched_copies(
    copies: dict[Path, Path], check: Callable[..., int]
) -> None:
    assert check(copies[api_types.DOCUMENT], copies[api_types.SCHEMA]) == 0
