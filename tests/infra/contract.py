"""Both sides of the deploy contract: what each deployable's code reads (controlroom/settings.py,
read statically) and what envs/common/main.tf gives each deployable (environment and secrets)."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from tests.infra import hcl

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "controlroom" / "settings.py"
ENV = ROOT / "infra" / "terraform" / "envs" / "common"
MODULES = ROOT / "infra" / "terraform" / "modules"
DEPLOYABLES = ("webhook", "persist", "subscriptions", "archive", "pulse", "notify", "realtime")
# the readers of controlroom/settings.py: their first argument is the variable's name
READERS = {
    "read",
    "require",
    "read_int",
    "read_bool",
    "read_secret",
    "_positive",
    "_origins",
    "_rate",
}
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]+")


@functools.cache
def _settings_tree() -> ast.Module:
    return ast.parse(SETTINGS.read_text())


def _classes() -> dict[str, ast.ClassDef]:
    return {n.name: n for n in _settings_tree().body if isinstance(n, ast.ClassDef)}


def settings_class(deployable: str) -> str:
    """The class whose from_env the deployable's accessor (settings.<deployable>()) calls."""
    for node in _settings_tree().body:
        if isinstance(node, ast.FunctionDef) and node.name == deployable:
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "from_env"
                    and isinstance(call.func.value, ast.Name)
                ):
                    return call.func.value.id
    raise AssertionError(f"settings.{deployable}() calls no *Settings.from_env")


def _first_string(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def reads(class_name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Every variable a settings class's from_env reads, with the classes it builds in turn."""
    node = _classes()[class_name]
    from_env = next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "from_env")
    # helpers defined inside from_env that name variables with a prefix (f"RATE_LIMIT_{name}")
    prefixes: dict[str, str] = {}
    for inner in ast.walk(from_env):
        if isinstance(inner, ast.FunctionDef) and inner is not from_env:
            for sub in ast.walk(inner):
                if isinstance(sub, ast.JoinedStr) and isinstance(sub.values[0], ast.Constant):
                    prefixes[inner.name] = str(sub.values[0].value)
    found: set[str] = set()
    for call in ast.walk(from_env):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        name = _first_string(call)
        if isinstance(func, ast.Name) and func.id in READERS and name:
            found.add(name)
        elif isinstance(func, ast.Name) and func.id in prefixes and name:
            found.add(prefixes[func.id] + name)
        elif (
            isinstance(func, ast.Attribute)
            and func.attr == "from_env"
            and isinstance(func.value, ast.Name)
            and func.value.id in _classes()
            and func.value.id not in seen | {class_name}
        ):
            found |= reads(func.value.id, seen | {class_name})
    return found


def deployable_reads(deployable: str) -> set[str]:
    return reads(settings_class(deployable))


def code_literals() -> set[str]:
    """Every UPPER_CASE string literal of the deployables' code (controlroom/ without the
    development tooling, functions/, realtime/): names read outside settings.py too."""
    found: set[str] = set()
    for folder in ("controlroom", "functions", "realtime"):
        for path in (ROOT / folder).rglob("*.py"):
            if "dev" in path.relative_to(ROOT).parts[1:2]:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and ENV_NAME.fullmatch(node.value)
                ):
                    found.add(node.value)
    return found


# --- terraform's side ----------------------------------------------------------------------


@functools.cache
def env_locals() -> dict[str, str]:
    merged: dict[str, str] = {}
    for block in hcl.folder_blocks(ENV, "locals"):
        merged.update(block.attributes())
    return merged


def names_in(expression: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """UPPER_CASE keys an expression's objects set, following the locals it merges in."""
    found = {k for k in hcl.object_keys(expression) if ENV_NAME.fullmatch(k)}
    for local in hcl.references(expression, "local") - seen:
        if local in env_locals():
            found |= names_in(env_locals()[local], seen | {local})
    return found


def _per_deployable(module: hcl.Block, attribute: str) -> dict[str, str]:
    expression = module.attributes().get(attribute)
    if expression is None:
        return {}
    if expression.startswith("local.") and expression.removeprefix("local.") in env_locals():
        expression = env_locals()[expression.removeprefix("local.")]
    items = hcl.object_items(expression)
    if items and set(items) <= set(DEPLOYABLES):
        return items
    if not names_in(expression):
        return {}  # not a deployable's variables (e.g. an environment's name)
    label = module.labels[0]
    if label in DEPLOYABLES:
        return {label: expression}
    account = re.search(r'emails\["(\w+)"\]', module.attributes().get("service_account", ""))
    if account and account[1] in DEPLOYABLES:
        return {account[1]: expression}
    raise AssertionError(f"module {label}: whose {attribute} is this?")


@functools.cache
def terraform_sets() -> dict[str, dict[str, set[str]]]:
    """deployable -> {"environment": names, "secrets": names} as envs/common/main.tf sets them."""
    out = {d: {"environment": set[str](), "secrets": set[str]()} for d in DEPLOYABLES}
    for module in hcl.folder_blocks(ENV, "module"):
        for attribute in ("environment", "secrets"):
            for deployable, expression in _per_deployable(module, attribute).items():
                out[deployable][attribute] |= names_in(expression)
    return out


def terraform_names(deployable: str) -> set[str]:
    sets = terraform_sets()[deployable]
    return sets["environment"] | sets["secrets"]
