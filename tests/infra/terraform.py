"""Terraform for the tests: the binary, a CLI configuration using the local provider mirror,
and which providers a configuration needs (offline: only what the mirror holds installs)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.infra import hcl

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "infra" / "terraform"
# The machine image's documented location of the provider mirror; TF_PLUGIN_MIRROR overrides it.
DEFAULT_MIRROR = "/opt/tf-plugins"
BUILTIN_PROVIDERS = {"terraform"}  # terraform_data: no provider to install


def mirror() -> Path:
    return Path(os.environ.get("TF_PLUGIN_MIRROR") or DEFAULT_MIRROR)


def required_version() -> tuple[int, int]:
    """The lowest `required_version` the configuration states (>= X.Y)."""
    found = [(1, 0)]
    for path in TERRAFORM_DIR.rglob("*.tf"):
        for major, minor in re.findall(
            r'required_version\s*=\s*">=\s*(\d+)\.(\d+)', path.read_text()
        ):
            found.append((int(major), int(minor)))
    return max(found)


def _version(binary: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [binary, "version", "-json"], capture_output=True, text=True, timeout=60, check=True
        )
        major, minor = json.loads(out.stdout)["terraform_version"].split(".")[:2]
        return int(major), int(minor)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None


@functools.cache
def binary() -> str:
    """TERRAFORM, then `make infra-check`'s tools environment, then terraform on PATH: the
    first recent enough for the configuration's required_version."""
    wanted = required_version()
    candidates = [
        os.environ.get("TERRAFORM"),
        str(ROOT / ".tools" / "bin" / "terraform"),
        str(ROOT / ".venv-tools" / "bin" / "terraform"),
        shutil.which("terraform"),
    ]
    tried = []
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            version = _version(candidate)
            tried.append(f"{candidate}: {version}")
            if version is not None and version >= wanted:
                return candidate
    raise AssertionError(f"no terraform >= {wanted} (set TERRAFORM); tried {tried}")


def mirrored_providers() -> set[str]:
    """namespace/type of every provider in the filesystem mirror (registry.terraform.io)."""
    registry = mirror() / "registry.terraform.io"
    return {f"{ns.name}/{p.name}" for ns in registry.glob("*") for p in ns.glob("*") if p.is_dir()}


def cli_config(folder: Path) -> Path:
    """A CLI configuration installing the mirrored providers from the mirror and nothing else
    (no network: anything else fails at once instead of hanging).

    No plugin cache: from an unpacked mirror `init` links the provider where it lies, while a
    cache would first copy it (the AWS provider is some 700 MB) into the cache.
    """
    include = sorted("registry.terraform.io/" + p for p in mirrored_providers())
    path = folder / "terraform.rc"
    path.write_text(
        "provider_installation {\n"
        f"  filesystem_mirror {{\n    path = {json.dumps(str(mirror()))}\n"
        f"    include = {json.dumps(include)}\n  }}\n}}\n"
        "disable_checkpoint = true\n"
    )
    return path


def providers_needed(folder: Path, seen: set[Path] | None = None) -> set[str]:
    """namespace/type of every provider a configuration and its local modules use."""
    seen = set() if seen is None else seen
    folder = folder.resolve()
    if folder in seen:
        return set()
    seen.add(folder)
    declared: dict[str, str] = {}
    for block in hcl.folder_blocks(folder, "terraform"):
        for required in block.blocks("required_providers"):
            for local_name, spec in required.attributes().items():
                source = re.search(r'source\s*=\s*"([^"]+)"', spec)
                declared[local_name] = source[1] if source else f"hashicorp/{local_name}"
    needed = {s.split("/", 1)[-1] if s.count("/") == 2 else s for s in declared.values()}
    for kind in ("resource", "data"):
        for block in hcl.folder_blocks(folder, kind):
            local_name = block.labels[0].split("_", 1)[0]
            if local_name not in BUILTIN_PROVIDERS:
                needed.add(declared.get(local_name, f"hashicorp/{local_name}"))
    for block in hcl.folder_blocks(folder, "module"):
        source = json.loads(block.attributes()["source"])
        if source.startswith("."):
            needed |= providers_needed(folder / source, seen)
    return needed


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary(), *args, "-no-color"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def environment(rc: Path, data_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_", "GOOGLE_"))}
    env |= {"TF_CLI_CONFIG_FILE": str(rc), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    if data_dir is not None:
        env["TF_DATA_DIR"] = str(data_dir)
    return env
