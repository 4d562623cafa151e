"""Static checks of the infrastructure code, the workflow and the build layout (no network)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from controlroom.dev import build
from tests.infra import contract, hcl

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"


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


def _roles_needed(deployable: str) -> set[str]:
    """The project roles a deployable's code needs, from the settings it reads."""
    reads = contract.deployable_reads(deployable)
    needed = {"roles/logging.logWriter"}  # every deployable writes structured logs
    if "CLOUD_SQL_INSTANCE" in reads:  # the Cloud SQL connector (database_engine = cloud_sql)
        needed.add("roles/cloudsql.client")
    if "CLOUD_TASKS_LOCATION" in reads:  # it enqueues Cloud Tasks
        needed.add("roles/cloudtasks.enqueuer")
    if "LEDGER_DATABASE" in reads:  # the delivery ledger in Firestore
        needed.add("roles/datastore.user")
    return needed


def test_service_accounts_hold_only_allowed_roles() -> None:
    """Each service account holds exactly the project roles its code needs: no more, no less
    (invoker and secret grants are on the resources, not the project)."""
    roles = _locals("gcp_service_accounts")["roles"]
    # tasks, scheduler and notifier only sign the OIDC tokens their calls carry
    expected = {d: _roles_needed(d) for d in build.DEPLOYABLES} | {
        "tasks": set(),
        "scheduler": set(),
        "notifier": set(),
    }
    assert {name: set(granted) for name, granted in roles.items()} == expected
    assert "roles/cloudsql.client" not in roles["webhook"]  # no database
    assert "roles/datastore.user" in roles["webhook"]


def test_aurora_minor_upgrades_cause_no_version_churn() -> None:
    """With automatic minor upgrades a pinned minor version would be downgraded back on every
    apply: the cluster then ignores engine_version changes (or names only the major)."""
    clusters = 0
    for folder in folders():
        resources = hcl.folder_blocks(folder, "resource")
        automatic = any(
            b.labels[0] == "aws_rds_cluster_instance"
            and b.attributes().get("auto_minor_version_upgrade", "true") == "true"
            for b in resources
        )
        for cluster in (b for b in resources if b.labels[0] == "aws_rds_cluster"):
            clusters += 1
            ignored = " ".join(
                life.attributes().get("ignore_changes", "") for life in cluster.blocks("lifecycle")
            )
            version = cluster.attributes().get("engine_version", "")
            assert (
                not automatic or "engine_version" in ignored or re.fullmatch(r'"\d+"', version)
            ), f"{folder.name}: {cluster.labels[1]} pins {version}, minor upgrades are automatic"
    assert clusters


def test_checkov_skips_carry_a_reason() -> None:
    for path in TERRAFORM.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                check, _, reason = line.split("checkov:skip=", 1)[1].partition(":")
                assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", check.strip()), line
                assert len(reason.strip()) > 20, f"{path.name}: a skip without a reason: {line}"


def test_workflow_structure() -> None:
    folder = ROOT / ".github" / "workflows"
    ci, deploy = (yaml.safe_load((folder / f).read_text()) for f in ("ci.yml", "deploy.yml"))
    triggers = ci.get("on") or ci.get(True)  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"pull_request", "push"}
    assert set(deploy.get("on") or deploy.get(True)) == {"workflow_call"}
    # pull requests cancel their older runs; a run on main never shares a group, so never
    assert ci["concurrency"]["cancel-in-progress"] is True
    assert "github.run_id" in ci["concurrency"]["group"]
    for workflow in (ci, deploy):
        assert workflow["permissions"] == {}  # each job asks for what it needs
        for name, job in workflow["jobs"].items():
            assert set(job.get("permissions", {})) <= {"contents", "id-token"}, name
            if "uses" in job:  # a call of deploy.yml
                continue
            assert job.get("runs-on") and job.get("steps"), name
            steps = job["steps"]
            uses = [s["uses"] for s in steps if "uses" in s]
            for step in steps:
                assert ("run" in step) != ("uses" in step), f"{name}: a step needs run or uses"
            for ref in uses:  # every action by full commit SHA
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
            checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
            assert all(s["with"]["persist-credentials"] is False for s in checkouts)
            # Python 3.11 (requires-python) set up before anything runs, in every job
            setup = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
            assert setup and setup[0]["with"]["python-version"] == "3.11", name
            assert steps.index(setup[0]) < min(i for i, s in enumerate(steps) if "run" in s)
            federated = any("auth@" in u or "configure-aws-credentials@" in u for u in uses)
            assert (job["permissions"].get("id-token") == "write") == federated, name
            for step in steps:  # values reach scripts through env, never spliced into them
                assert "${{" not in step.get("run", ""), f"{name}: {step.get('name')}"
    text = "".join((folder / f).read_text() for f in ("ci.yml", "deploy.yml"))
    assert "secrets." not in text  # no stored keys: federation only
    assert re.findall(r"@[0-9a-f]{40}", text)  # each pin names its release in a comment
    assert not re.findall(r"@[0-9a-f]{40}(?! # v\d+\.\d+\.\d+\n)", text)

    jobs = ci["jobs"]
    assert any("make test" in s.get("run", "") for s in jobs["test"]["steps"])
    # the image is built once; its id goes to both deploys, the image itself as an artifact
    assert "steps.save.outputs.id" in jobs["image"]["outputs"]["id"]
    builds = [
        s for j in jobs.values() for s in j.get("steps", []) if "docker build" in s.get("run", "")
    ]
    assert len(builds) == 1
    assert "docker build" not in (folder / "deploy.yml").read_text()
    for env, needs in (("dev", {"test", "image"}), ("prod", {"image", "deploy-dev"})):
        job = jobs[f"deploy-{env}"]
        assert job["uses"] == "./.github/workflows/deploy.yml"
        assert job["with"] == {"environment": env, "image-id": "${{ needs.image.outputs.id }}"}
        assert set(job["needs"]) == needs
        assert job["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        assert (ROOT / "infra" / "terraform" / "envs" / env).is_dir()

    # deploy.yml: pushed and planned by digest, the plan saved and shown, then exactly that
    # plan applied in the environment whose reviewers approve it
    push, plan, apply = (deploy["jobs"][j] for j in ("push", "plan", "apply"))
    assert push["environment"] == plan["environment"] == "${{ inputs.environment }}-plan"
    assert apply["environment"] == "${{ inputs.environment }}"
    assert plan["needs"] == ["push"] and set(apply["needs"]) == {"push", "plan"}
    pushed = next(s["run"] for s in push["steps"] if s.get("id") == "push")
    assert "$IMAGE_ID" in pushed and "RepoDigests" in pushed and "@sha256:" in pushed
    assert "steps.push.outputs.image" in push["outputs"]["image"]
    script = next(s for s in plan["steps"] if "terraform plan" in s.get("run", ""))
    assert script["env"]["IMAGE"] == "${{ needs.push.outputs.image }}"
    assert (
        '-out=tfplan -var-file="$ENVIRONMENT.tfvars" -var "realtime_image=$IMAGE"' in script["run"]
    )
    assert "terraform show -no-color tfplan" in script["run"]
    assert "GITHUB_STEP_SUMMARY" in script["run"]
    upload = next(s for s in plan["steps"] if s.get("uses", "").startswith("actions/upload-"))
    download = next(s for s in apply["steps"] if s.get("uses", "").startswith("actions/download-"))
    assert upload["with"]["name"] == download["with"]["name"] == "tfplan-${{ inputs.environment }}"
    assert "/tfplan" in upload["with"]["path"] and ".terraform.lock.hcl" in upload["with"]["path"]
    applied = next(s for s in apply["steps"] if "terraform apply" in s.get("run", ""))
    assert applied["env"]["IMAGE"] == "${{ needs.push.outputs.image }}"
    assert '"realtime_image"' in applied["run"] and '!= "$IMAGE"' in applied["run"]
    assert applied["run"].rstrip().endswith("terraform apply -input=false tfplan")
    assert "-auto-approve" not in text  # nothing but the saved plan, after the approval


def test_build_lays_out_every_deployable(tmp_path: Path) -> None:
    made = build.build(tmp_path / "build")
    assert {p.name for p in made} == {*build.FUNCTIONS, "realtime"}
    for name in build.FUNCTIONS:
        folder = tmp_path / "build" / name
        assert (folder / "main.py").is_file()
        assert (folder / "controlroom" / "__init__.py").is_file()
        assert not (folder / "controlroom" / "dev").exists()  # the development tooling stays local
        assert "psycopg" in (folder / "requirements.txt").read_text()
    assert (tmp_path / "build" / "realtime" / "realtime" / "app.py").is_file()


# --- the locks and the image context -------------------------------------------------------


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a requirements lock."""
    pins: dict[str, tuple[str, int]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()):
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s;\\]+)", entry)
        if match:
            name = re.sub(r"[-_.]+", "-", match[1]).lower()
            pins[name] = (match[2], entry.count("--hash=sha256:"))
    return pins


def test_every_lock_pins_and_hashes_what_pyproject_declares_at_the_same_versions() -> None:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    dev = _pins(build.LOCKS / "dev.txt")
    assert set(extras) >= set(build.DEPLOYABLES)
    locks = {name: (build.LOCKS / f"{name}.txt") for name in build.DEPLOYABLES}
    for name, lock in {"dev": build.LOCKS / "dev.txt", **locks}.items():
        pins = _pins(lock)
        declared = project["dependencies"] + (
            [r for e in extras.values() for r in e] if name == "dev" else extras[name]
        )
        for line in declared:
            requirement = Requirement(line)
            key = re.sub(r"[-_.]+", "-", requirement.name).lower()
            assert key in pins, f"{lock.name} lacks {key}: run make lock"
            assert requirement.specifier.contains(pins[key][0]), f"{lock.name}: {line}: make lock"
        for key, (version, hashes) in pins.items():
            assert hashes >= 1, f"{lock.name}: {key} has no hash"
            assert dev.get(key, (version,))[0] == version, f"{lock.name}: {key} differs from dev"
            assert name == "dev" or key in dev, f"{lock.name}: {key} is not in dev.txt"


def test_the_webhook_lock_carries_none_of_the_heavy_packages() -> None:
    pins = _pins(build.LOCKS / "webhook.txt")
    # redis is the webhook's now: its rate limiter shares buckets through REDIS_URL
    assert not {"pyarrow", "fastapi", "python-socketio", "boto3"} & set(pins)
    assert "pyarrow" not in _pins(build.LOCKS / "realtime.txt")


def _docker_context(paths: list[str]) -> set[str]:
    """Which paths `docker build .` sends, by .dockerignore's rules (the last match wins)."""
    import fnmatch

    rules = [
        (line.startswith("!"), line.removeprefix("!"))
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def matches(path: str, pattern: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            tail = pattern.removeprefix("**/")
            return any(fnmatch.fnmatch(p, tail) for p in parts)
        return any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)

    sent = set()
    for path in paths:
        included = True
        for negated, pattern in rules:
            if matches(path, pattern):
                included = negated
        if included:
            sent.add(path)
    return sent


def test_the_image_context_is_the_build_folder_and_the_dashboard_sources_only() -> None:
    wanted = [
        "build/realtime/requirements.txt",
        "build/realtime/realtime/app.py",
        "build/realtime/controlroom/adapters/db.py",
        "dashboard/package.json",
        "dashboard/src/App.tsx",
    ]
    unwanted = [
        "dashboard/node_modules/vite/package.json",
        "dashboard/dist/index.html",
        "build/webhook/main.py",
        "build/realtime/controlroom/adapters/__pycache__/db.cpython-311.pyc",
        ".venv/bin/python",
        "controlroom/dev/stack/local.py",
        "tests/js/node_modules/socket.io-client/package.json",
        ".local/stack.env",
        ".git/config",
    ]
    assert _docker_context(wanted + unwanted) == set(wanted)
    dockerfile = (ROOT / "realtime" / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.MULTILINE)
    assert copied
    for source in copied:  # everything the Dockerfile copies is in the context
        path = source + "x" if source.endswith("/") else source
        assert _docker_context([path]) == {path}, source
    assert "--require-hashes" in dockerfile
