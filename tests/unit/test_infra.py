"""Static checks of the infrastructure code, the workflow and the build layout (no network)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from controlroom import build

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"
ALLOWED_PROJECT_ROLES = {
    "roles/datastore.user",
    "roles/cloudtasks.enqueuer",
    "roles/logging.logWriter",
    "roles/cloudsql.client",
}


def parsed(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("*.tf")):
        with path.open() as f:
            out.append(hcl2.load(f))
    return out


def folders() -> list[Path]:
    return sorted({p.parent for p in TERRAFORM.rglob("*.tf")})


@pytest.mark.parametrize("folder", folders(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_variable_used_is_declared_and_documented(folder: Path) -> None:
    declared: dict[str, Any] = {}
    for doc in parsed(folder):
        for block in doc.get("variable", []):
            declared.update(block)
    text = "\n".join(p.read_text() for p in folder.glob("*.tf"))
    used = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", text))
    assert used <= set(declared), f"undeclared: {sorted(used - set(declared))}"
    for name, spec in declared.items():
        assert str(spec.get("description", "")).strip(), f"variable {name} has no description"
        assert name in used, f"variable {name} is declared but never used"


def test_every_module_source_exists_and_every_output_is_described() -> None:
    for folder in folders():
        for doc in parsed(folder):
            for block in doc.get("module", []):
                for name, spec in block.items():
                    source = (folder / spec["source"]).resolve()
                    assert (source / "main.tf").is_file(), (
                        f"{folder.name}: module {name} -> {source}"
                    )
            for block in doc.get("output", []):
                for name, spec in block.items():
                    assert str(spec.get("description", "")).strip(), f"output {name} undocumented"


def _locals(module: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for doc in parsed(TERRAFORM / "modules" / module):
        for block in doc.get("locals", []):
            merged.update(block)
    return merged


def test_function_build_folders_match_the_deployables() -> None:
    declared = set(_locals("gcp_functions")["functions"])
    folders_on_disk = {p.name for p in (ROOT / "functions").iterdir() if (p / "main.py").is_file()}
    assert declared == set(build.FUNCTIONS) == folders_on_disk


def test_service_accounts_hold_only_allowed_roles() -> None:
    roles = _locals("gcp_service_accounts")["roles"]
    assert set(roles) >= set(build.FUNCTIONS) | {"realtime", "tasks", "scheduler"}
    for deployable, granted in roles.items():
        assert set(granted) <= ALLOWED_PROJECT_ROLES, f"{deployable}: {granted}"
    assert roles["webhook"] and "roles/cloudsql.client" not in roles["webhook"]  # no database


def test_checkov_skips_carry_a_reason() -> None:
    for path in TERRAFORM.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                check, _, reason = line.split("checkov:skip=", 1)[1].partition(":")
                assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", check.strip()), line
                assert len(reason.strip()) > 20, f"{path.name}: a skip without a reason: {line}"


def test_workflow_structure() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"pull_request", "push"}
    jobs = workflow["jobs"]
    for name, job in jobs.items():
        assert job.get("runs-on"), name
        assert job.get("steps"), name
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), f"{name}: a step needs run or uses"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
        for need in job.get("needs", []):
            assert need in jobs, f"{name} needs unknown job {need}"
    assert any("make test" in s.get("run", "") for s in jobs["test"]["steps"])
    assert jobs["deploy-prod"]["environment"] == "prod"
    assert jobs["deploy-dev"]["permissions"]["id-token"] == "write"
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "secrets." not in text  # no stored keys: federation only


def test_build_lays_out_every_deployable(tmp_path: Path) -> None:
    made = build.build(tmp_path / "build")
    assert {p.name for p in made} == {*build.FUNCTIONS, "realtime"}
    for name in build.FUNCTIONS:
        folder = tmp_path / "build" / name
        assert (folder / "main.py").is_file()
        assert (folder / "controlroom" / "__init__.py").is_file()
        assert not (folder / "controlroom" / "stack").exists()  # the local stack stays local
        assert "psycopg" in (folder / "requirements.txt").read_text()
    assert (tmp_path / "build" / "realtime" / "realtime" / "app.py").is_file()
