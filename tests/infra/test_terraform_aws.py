"""Terraform, offline: `terraform validate` of every configuration whose providers the machine
holds, and the AWS half applied for real against moto's server, then read back with boto3.

Offline means only the providers in the filesystem mirror install (TF_PLUGIN_MIRROR, by
default the machine image's /opt/tf-plugins, which holds hashicorp/aws). hashicorp/google (and
archive, random, tls) cannot be fetched here: configurations needing them are listed as not
validatable, with the reason, and are checked by `make infra-check` (fmt, checkov) and by
tests/unit/test_deploy_contract.py instead. Every AWS-only module must validate.

The apply writes a root configuration in a temporary folder that instantiates every
modules/aws_* module with the arguments envs/common/main.tf gives it (test values where those
arguments come from Google modules), with the AWS provider's endpoints on a moto server bound
to 127.0.0.1. Resource types moto cannot create are kept out of the apply (with whatever
refers to them) and only planned; found by trying, with moto 5.2:

- aws_vpn_gateway_route_propagation: EnableVgwRoutePropagation is not implemented;
- aws_athena_workgroup: created, but ListTagsForResource then does not find it (the provider
  reads tags after creating), and with it aws_iam_policy.query, which names the workgroup.

Everything else applies: the buckets and their configurations, IAM roles and policies, KMS
keys, Glue, Secrets Manager, Aurora, the RDS Proxy and its target, security groups, the VPN
gateway, customer gateways and VPN connections, SNS and the CloudWatch alarms. After the apply
a plan must create exactly the excluded resources; the test prints them.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.infra import hcl
from tests.infra import terraform as tf


@dataclass(frozen=True)
class Workspace:
    tree: Path  # a copy of infra/terraform: init writes lock files and .terraform folders
    rc: Path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("terraform")
    tree = base / "terraform"
    shutil.copytree(
        tf.TERRAFORM_DIR,
        tree,
        symlinks=True,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"),
    )
    return Workspace(tree, tf.cli_config(base))


def configurations() -> list[Path]:
    return sorted({p.parent.relative_to(tf.TERRAFORM_DIR) for p in tf.TERRAFORM_DIR.rglob("*.tf")})


def _validate(workspace: Workspace, relative: Path) -> tuple[bool, str]:
    folder = workspace.tree / relative
    env = tf.environment(workspace.rc, folder / ".terraform")
    init = tf.run(["init", "-backend=false", "-input=false"], folder, env, timeout=180)
    if init.returncode:
        return False, f"init failed:\n{init.stdout}\n{init.stderr}"
    checked = tf.run(["validate", "-json"], folder, env, timeout=180)
    report = json.loads(checked.stdout or "{}")
    problems = [
        f"{d.get('severity')}: {d.get('summary')} {d.get('detail', '')} "
        f"({d.get('range', {}).get('filename')}:{d.get('range', {}).get('start', {}).get('line')})"
        for d in report.get("diagnostics", [])
    ]
    return bool(report.get("valid")) and checked.returncode == 0, "\n".join(problems)


def test_every_configuration_whose_providers_are_mirrored_validates(workspace: Workspace) -> None:
    available = tf.mirrored_providers()
    assert "hashicorp/aws" in available, f"the AWS provider is not in {tf.mirror()}"
    validatable, not_validatable = [], {}
    for relative in configurations():
        missing = tf.providers_needed(tf.TERRAFORM_DIR / relative) - available
        if missing:
            not_validatable[str(relative)] = f"needs {sorted(missing)}, not in the offline mirror"
        else:
            validatable.append(relative)
    print("\nnot validatable offline (checked by fmt, checkov and the contract tests):")
    for name, reason in not_validatable.items():
        print(f"  {name}: {reason}")
    # the check cannot skip everything: each AWS-only module is among those validated
    aws_modules = {
        Path("modules") / p.name for p in (tf.TERRAFORM_DIR / "modules").glob("aws_*") if p.is_dir()
    }
    assert aws_modules and aws_modules <= set(validatable), not_validatable
    with ThreadPoolExecutor(max_workers=1) as pool:  # the apply runs meanwhile
        results = dict(
            zip(
                validatable,
                pool.map(lambda r: _validate(workspace, r), validatable),
                strict=True,
            )
        )
    failures = {str(r): out for r, (ok, out) in results.items() if not ok}
    print("validated: " + ", ".join(str(r) for r in sorted(results)))
    assert not failures, "\n\n".join(f"{name}:\n{out}" for name, out in failures.items())


# --- the AWS half, applied against moto ----------------------------------------------------

ENV = tf.TERRAFORM_DIR / "envs" / "common"
REGION = "eu-west-1"
# The services the AWS modules use; each endpoint is the moto server.
ENDPOINTS = [
    "athena", "cloudwatch", "ec2", "glue", "iam", "kms", "logs", "rds", "s3", "secretsmanager",
    "sns", "sqs", "sts",
]  # fmt: skip
ORIGIN = "https://dashboard.example.test"
# Values for the environment's variables (HCL); those not named use the variable's default.
TEST_VARS = {
    "environment": '"dev"',
    "aws_region": json.dumps(REGION),
    "dashboard_origins": json.dumps([ORIGIN]),
    "connector_cidr": '"10.8.0.0/28"',
    "aws_asn": "64512",
    "google_asn": "65010",
    "github_repository": '"example/controlroom"',
    "aws_create_github_oidc_provider": "true",
    "aws_web_identity_audience": '"https://controlroom.example.test/aws"',
    "database_max_capacity": "4",
}
TEST_LOCALS = {"prefix": '"cr-test"', "aurora": "true", "cloud_sql": "false"}
# Arguments that come from Google modules or the environment's generated values, by name.
GOOGLE_SUBJECTS = {
    name: f"10000000000000000000{i}"
    for i, name in enumerate(["archive", "realtime", "persist", "subscriptions", "webhook"])
}
TEST_ARGS = {
    "prefix": '"cr-test"',
    "google_subjects": json.dumps(GOOGLE_SUBJECTS).replace(":", " ="),
    "google_interface_ips": '["203.0.113.10", "203.0.113.11"]',
    "preshared_keys": '["ktestpresharedkey0001", "ktestpresharedkey0002", '
    '"ktestpresharedkey0003", "ktestpresharedkey0004"]',
    "runtime_password": '"test-runtime-password-0123456789"',
    "alarm_emails": '["operations@example.test"]',
    "client_cidrs": '["10.8.0.0/28"]',
}
# Resource types moto's server cannot create (found by trying; see the module docstring).
MOTO_CANNOT_APPLY = {
    "aws_vpn_gateway_route_propagation": "moto: EnableVgwRoutePropagation is not implemented",
    "aws_athena_workgroup": "moto: ListTagsForResource does not find the workgroup it created",
}
META_ARGUMENTS = {"source", "count", "for_each", "depends_on", "providers", "version"}


def _aws_modules() -> list[str]:
    return sorted(p.name for p in (tf.TERRAFORM_DIR / "modules").glob("aws_*") if p.is_dir())


def _variables(module: str) -> dict[str, str | None]:
    """variable -> its default's text (None: required)."""
    out: dict[str, str | None] = {}
    for block in hcl.folder_blocks(tf.TERRAFORM_DIR / "modules" / module, "variable"):
        out[block.labels[0]] = block.attributes().get("default")
    return out


def _outputs(module: str) -> set[str]:
    return {b.labels[0] for b in hcl.folder_blocks(tf.TERRAFORM_DIR / "modules" / module, "output")}


def _env_variable_defaults() -> dict[str, str | None]:
    return {b.labels[0]: b.attributes().get("default") for b in hcl.folder_blocks(ENV, "variable")}


@dataclass(frozen=True)
class Network:
    """What the environment is given on the AWS side: a VPC, subnets in two zones, routes."""

    vpc_id: str
    subnet_ids: list[str]
    route_table_ids: list[str]
    security_group_id: str

    def variables(self) -> dict[str, str]:
        return {
            "aws_vpc_id": json.dumps(self.vpc_id),
            "aws_subnet_ids": json.dumps(self.subnet_ids),
            "aws_route_table_ids": json.dumps(self.route_table_ids),
            "aws_security_group_ids": json.dumps([self.security_group_id]),
        }


def _resolve(expression: str, calls: dict[str, str], test_vars: dict[str, str]) -> str | None:
    """The environment's argument with test values, or None if it needs a Google-side value."""
    defaults = _env_variable_defaults()
    if set(hcl.references(expression, "module")) - set(calls):
        return None
    for kind in ("resource", "random_password", "tls_private_key", "terraform_data", "data"):
        if hcl.references(expression, kind):
            return None
    for name in hcl.references(expression, "local"):
        if name not in TEST_LOCALS:
            return None
    for name in hcl.references(expression, "var"):
        if test_vars.get(name, defaults.get(name)) is None:
            return None

    def var(match: re.Match[str]) -> str:
        value = test_vars.get(match[1], defaults.get(match[1]))
        return f"({value})"

    text = re.sub(r"(?<![\w.])var\.([A-Za-z_][\w-]*)", var, expression)
    text = re.sub(r"(?<![\w.])local\.([A-Za-z_][\w-]*)", lambda m: f"({TEST_LOCALS[m[1]]})", text)
    # a module counted in the environment is instantiated once here
    return re.sub(r"(?<![\w.])(module\.[A-Za-z_][\w-]*)\[0\]", r"\1", text)


def _env_calls() -> dict[str, hcl.Block]:
    """module folder name -> the environment's call of it."""
    return {
        json.loads(b.attributes()["source"]).rsplit("/", 1)[-1]: b
        for b in hcl.folder_blocks(ENV, "module")
    }


def _calls() -> dict[str, str]:
    """Every AWS module -> its name in the root (the environment's name for it, if it calls it)."""
    env_calls = _env_calls()
    return {m: (env_calls[m].labels[0] if m in env_calls else m) for m in _aws_modules()}


def _excluded_by_module() -> dict[str, set[str]]:
    """Root module name -> `type.name` of its resources kept out of the apply: the types moto
    cannot create and whatever refers to them, within a module and through its outputs."""
    calls = _calls()
    env_calls = _env_calls()
    bodies: dict[str, dict[str, str]] = {}  # module -> referable name -> its text
    for module, name in calls.items():
        folder = tf.TERRAFORM_DIR / "modules" / module
        bodies[name] = {}
        for block in hcl.folder_blocks(folder):
            if block.kind == "resource":
                bodies[name][".".join(block.labels)] = block.body
            elif block.kind == "data":
                bodies[name]["data." + ".".join(block.labels)] = block.body
            elif block.kind == "output":
                bodies[name]["output." + block.labels[0]] = block.body
            elif block.kind == "locals":
                for local, text in block.attributes().items():
                    bodies[name]["local." + local] = text
    excluded = {
        name: {r for r in texts if r.split(".", 1)[0] in MOTO_CANNOT_APPLY}
        for name, texts in bodies.items()
    }
    tainted_vars: dict[str, set[str]] = {name: set() for name in bodies}
    changed = True
    while changed:
        changed = False
        for name, texts in bodies.items():
            for referable, text in texts.items():
                if referable in excluded[name]:
                    continue
                refers = any(
                    re.search(rf"(?<![\w.]){re.escape(e)}\b", text) for e in excluded[name]
                )
                refers |= any(re.search(rf"(?<![\w.])var\.{v}\b", text) for v in tainted_vars[name])
                if refers:
                    excluded[name].add(referable)
                    changed = True
        # a module's argument built from an excluded output taints that variable
        for module, name in calls.items():
            arguments = env_calls[module].attributes() if module in env_calls else {}
            for variable, expression in arguments.items():
                for other, texts in excluded.items():
                    outputs = {e.removeprefix("output.") for e in texts if e.startswith("output.")}
                    used = set(re.findall(rf"module\.{other}(?:\[0\])?\.(\w+)", expression))
                    if outputs & used and variable not in tainted_vars[name]:
                        tainted_vars[name].add(variable)
                        changed = True
    return {
        name: {e for e in found if not e.startswith(("data.", "output.", "local."))}
        for name, found in excluded.items()
    }


def applied_and_planned() -> tuple[list[str], list[str]]:
    """Resource addresses to apply against moto, and those only planned."""
    excluded = _excluded_by_module()
    apply, plan = [], []
    for module, name in _calls().items():
        for block in hcl.folder_blocks(tf.TERRAFORM_DIR / "modules" / module, "resource"):
            resource = ".".join(block.labels)
            (plan if resource in excluded[name] else apply).append(f"module.{name}.{resource}")
    return apply, plan


def moto_root(endpoint: str, network: Network) -> str:
    """A root configuration instantiating every AWS module, the provider pointed at moto."""
    env_calls = _env_calls()
    calls = _calls()
    names = set(calls.values())
    outputs = {calls[m]: _outputs(m) for m in calls}
    endpoints = "\n".join(f"    {s} = {json.dumps(endpoint)}" for s in ENDPOINTS)
    parts = [
        'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws" }\n  }\n}\n',
        f'provider "aws" {{\n  region = "{REGION}"\n  access_key = "local"\n'
        '  secret_key = "local"\n  skip_credentials_validation = true\n'
        "  skip_metadata_api_check = true\n"
        f"  s3_use_path_style = true\n  max_retries = 1\n  endpoints {{\n{endpoints}\n  }}\n}}\n",
    ]
    test_vars = TEST_VARS | network.variables()
    missing = []
    for module, name in calls.items():
        given = env_calls[module].attributes() if module in env_calls else {}
        lines = [f'  source = "../modules/{module}"']
        for variable, default in _variables(module).items():
            value = (
                _resolve(given[variable], {n: n for n in names}, test_vars)
                if variable in given
                else None
            )
            if value is None and variable in TEST_ARGS:
                value = TEST_ARGS[variable]
            if value is None:  # wired by name: another AWS module's output of the same name
                source = [n for n in names - {name} if variable in outputs[n]]
                value = f"module.{source[0]}.{variable}" if source else None
            if value is None and default is None:
                missing.append(f"{module}.{variable}")
            if value is not None:
                lines.append(f"  {variable} = {value}")
        parts.append(f'module "{name}" {{\n' + "\n".join(lines) + "\n}\n")
    assert not missing, f"no test value for {missing}: add them to TEST_ARGS or TEST_VARS"
    return "\n".join(parts)


@dataclass
class Applied:
    endpoint: str
    state: dict[str, list[dict[str, Any]]]  # resource type -> the values of each instance
    planned_only: list[str]  # addresses the final plan still creates (moto cannot)
    planned: dict[str, list[dict[str, Any]]]  # resource type -> planned values of those

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def values(self, resource_type: str) -> list[dict[str, Any]]:
        found = self.state.get(resource_type, [])
        assert found, f"nothing of type {resource_type} was applied"
        return found


def _state_values(state: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}

    def walk(module: dict[str, Any]) -> None:
        for resource in module.get("resources", []):
            if resource.get("mode") == "managed":
                out.setdefault(resource["type"], []).append(resource["values"])
        for child in module.get("child_modules", []):
            walk(child)

    walk(state.get("values", {}).get("root_module", {}))
    return out


def _checked(result: subprocess.CompletedProcess[str], what: str) -> str:
    assert result.returncode == 0, (
        f"terraform {what} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    return result.stdout


def _network(endpoint: str) -> Network:
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=REGION,
                       aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab", start=1)
    ]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    group = ec2.create_security_group(GroupName="workloads", Description="test", VpcId=vpc)
    return Network(vpc, subnets, [table], group["GroupId"])


def _apply(workspace: Workspace, endpoint: str) -> Applied:
    root = workspace.tree / "moto"
    root.mkdir()
    (root / "main.tf").write_text(moto_root(endpoint, _network(endpoint)))
    env = tf.environment(workspace.rc, root / ".terraform")
    started = time.monotonic()
    _checked(tf.run(["init", "-input=false"], root, env, timeout=120), "init")
    apply, _ = applied_and_planned()
    targets = [f"-target={address}" for address in apply]
    _checked(
        tf.run(
            ["apply", "-auto-approve", "-input=false", "-parallelism=30", *targets], root, env, 300
        ),
        "apply",
    )
    # the rest, planned against the state the apply left (not refreshed: moto reads some
    # attributes back differently, which says nothing about the configuration)
    _checked(
        tf.run(["plan", "-input=false", "-refresh=false", "-out=rest.plan"], root, env, 180), "plan"
    )
    rest = json.loads(_checked(tf.run(["show", "-json", "rest.plan"], root, env, 120), "show"))
    changes = [
        c
        for c in rest.get("resource_changes", [])
        if c["mode"] == "managed" and c["change"]["actions"] != ["no-op"]
    ]
    print(f"\napplied against moto in {time.monotonic() - started:.0f} s")
    planned: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        planned.setdefault(change["type"], []).append(change["change"]["after"] or {})
    state = rest["prior_state"]  # the state the apply left, as the plan read it
    return Applied(
        endpoint,
        _state_values(state),
        sorted(f"{c['address']} ({'/'.join(c['change']['actions'])})" for c in changes),
        planned,
    )


@pytest.fixture(scope="module")
def moto_endpoint(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    # AWS managed policies (PowerUserAccess...) exist in moto only when it loads them
    monkeypatch_module.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.CRITICAL)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module", autouse=True)
def applying(workspace: Workspace, moto_endpoint: str) -> Iterator[Future[Applied]]:
    """The apply starts with the module and runs while the configurations validate."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(_apply, workspace, moto_endpoint)


@pytest.fixture(scope="module")
def applied(applying: Future[Applied]) -> Applied:
    return applying.result(timeout=400)


def test_what_moto_cannot_create_is_planned_and_everything_else_converged(applied: Applied) -> None:
    _, planned = applied_and_planned()
    print("\nplanned, not applied (moto cannot create them):")
    for resource_type, reason in MOTO_CANNOT_APPLY.items():
        print(f"  {resource_type}: {reason}")
    for change in applied.planned_only:
        print(f"  {change}")
    print("  (updates: attributes moto reads back differently from what it was given)")
    # after the apply, a plan creates exactly the excluded resources and destroys nothing (the
    # in-place updates are attributes moto reads back differently from what it was given)
    assert applied.planned_only, "nothing was left to plan: is MOTO_CANNOT_APPLY out of date?"
    created = set()
    for change in applied.planned_only:
        address = re.sub(r"\[[^\]]*\]$", "", change.split(" ", 1)[0])
        assert change.endswith(("(create)", "(update)")), change
        if change.endswith("(create)"):
            assert address in planned, f"{change}: applied, yet still to be created"
            created.add(address)
    assert created == set(planned), f"excluded but not planned: {set(planned) - created}"


def _policy(document: str | dict[str, Any]) -> dict[str, Any]:
    return json.loads(document) if isinstance(document, str) else document


def _statements(document: str | dict[str, Any]) -> list[dict[str, Any]]:
    statements = _policy(document)["Statement"]
    return [statements] if isinstance(statements, dict) else list(statements)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_buckets_are_private_tls_only_encrypted_and_versioned(applied: Applied) -> None:
    s3 = applied.client("s3")
    kms_keys = {k["arn"] for k in applied.state.get("aws_kms_key", [])}
    buckets = [b["bucket"] for b in applied.values("aws_s3_bucket")]
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= set(buckets)
    for bucket in buckets:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4, (bucket, block)
        statements = _statements(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert any(
            st["Effect"] == "Deny"
            and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
            in ("false", ["false"])
            for st in statements
        ), (bucket, statements)
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        default = rules[0]["ApplyServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "aws:kms", (bucket, default)
        if "KMSMasterKeyID" in default:  # a key of ours, not a stray id
            assert default["KMSMasterKeyID"] in kms_keys | {k.rsplit("/", 1)[-1] for k in kms_keys}
        assert s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled", bucket


def _table(applied: Applied) -> dict[str, Any]:
    glue = applied.client("glue")
    (table,) = applied.values("aws_glue_catalog_table")
    return glue.get_table(DatabaseName=table["database_name"], Name=table["name"])["Table"]


def test_archive_lifecycle_keeps_the_queryable_table_out_of_glacier(applied: Applied) -> None:
    s3 = applied.client("s3")
    (archive,) = [
        b["bucket"] for b in applied.values("aws_s3_bucket") if b["bucket"].endswith("-archive")
    ]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=archive)["Rules"]
    assert any(r.get("AbortIncompleteMultipartUpload") for r in rules), rules
    assert any(r.get("Transitions") for r in rules), rules
    location = _table(applied)["StorageDescriptor"]["Location"]
    table_prefix = location.removeprefix(f"s3://{archive}/")
    for rule in rules:
        prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
        archived = {t["StorageClass"] for t in rule.get("Transitions", [])} & {
            "GLACIER",
            "DEEP_ARCHIVE",
        }
        overlaps = table_prefix.startswith(prefix) or prefix.startswith(table_prefix)
        assert not (archived and overlaps), (
            f"rule {rule.get('ID')} moves the table's objects to {archived}"
        )


def test_branding_bucket_answers_the_dashboards_preflight(applied: Applied) -> None:
    s3 = applied.client("s3")
    (branding,) = [
        b["bucket"] for b in applied.values("aws_s3_bucket") if b["bucket"].endswith("-branding")
    ]
    rules = s3.get_bucket_cors(Bucket=branding)["CORSRules"]
    assert any(ORIGIN in r["AllowedOrigins"] and "PUT" in r["AllowedMethods"] for r in rules), rules
    assert all("*" not in r["AllowedOrigins"] for r in rules), rules


def _google_roles(applied: Applied) -> dict[str, dict[str, Any]]:
    iam = applied.client("iam")
    roles = {}
    for role in applied.values("aws_iam_role"):
        trust = _policy(iam.get_role(RoleName=role["name"])["Role"]["AssumeRolePolicyDocument"])
        federated = [
            st
            for st in _statements(trust)
            if "accounts.google.com" in _listed(st.get("Principal", {}).get("Federated", []))
        ]
        if federated:
            roles[role["name"]] = {"trust": federated}
    return roles


def test_google_workloads_assume_separate_roles_checked_for_audience_and_subject(
    applied: Applied,
) -> None:
    roles = _google_roles(applied)
    assert len(roles) >= 2, f"one role serves every workload: {sorted(roles)}"
    subjects = set(GOOGLE_SUBJECTS.values())
    trusted = []
    for name, role in roles.items():
        for statement in role["trust"]:
            assert _listed(statement["Action"]) == ["sts:AssumeRoleWithWebIdentity"], name
            equals = statement.get("Condition", {}).get("StringEquals", {})
            # for Google tokens AWS names the token's aud `oaud` (`aud` is its azp, the account)
            audience = _listed(equals.get("accounts.google.com:oaud", []))
            subject = _listed(equals.get("accounts.google.com:sub", []))
            assert audience == [json.loads(TEST_VARS["aws_web_identity_audience"])], (
                name,
                statement,
            )
            assert len(subject) == 1 and set(subject) <= subjects, (name, statement)
            trusted += subject
    assert len(trusted) == len(set(trusted)), "two roles trust the same service account"


def test_each_roles_s3_access_is_limited_to_its_prefixes(applied: Applied) -> None:
    iam = applied.client("iam")
    bucket_arns = {b["arn"]: b["bucket"] for b in applied.values("aws_s3_bucket")}
    reach: dict[str, set[str]] = {}
    for name in _google_roles(applied):
        reach[name] = set()
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
            for st in _statements(document):
                actions = _listed(st["Action"])
                if st["Effect"] != "Allow" or not any(a.startswith("s3:") for a in actions):
                    continue
                assert not any(a in ("s3:*", "*") for a in actions), (name, st)
                for resource in _listed(st["Resource"]):
                    assert resource != "*", (name, st)
                    bucket_arn, _, key = resource.partition("/")
                    assert bucket_arn in bucket_arns, (name, resource)
                    reach[name].add(bucket_arns[bucket_arn])
                    if key:  # objects: under a prefix, never the whole bucket
                        assert key not in ("*", "") and "/" in key, (name, resource)
                    else:  # listing: only with an s3:prefix condition
                        assert "s3:prefix" in json.dumps(st.get("Condition", {})), (name, st)
    realtime = [name for name in reach if "realtime" in name]
    assert realtime, f"no role of the realtime service: {sorted(reach)}"
    for name in realtime:  # the internet-facing service cannot touch the archive
        assert not any(b.endswith("-archive") for b in reach[name]), (name, reach[name])
    assert any(any(b.endswith("-archive") for b in r) for r in reach.values()), reach


def test_kms_keys_exist_and_rotate(applied: Applied) -> None:
    kms = applied.client("kms")
    for key in applied.values("aws_kms_key"):
        assert kms.describe_key(KeyId=key["key_id"])["KeyMetadata"]["Enabled"], key["arn"]
        assert kms.get_key_rotation_status(KeyId=key["key_id"])["KeyRotationEnabled"], key["arn"]


def test_glue_table_projects_its_partitions_over_parquet(applied: Applied) -> None:
    (archive,) = [
        b["bucket"] for b in applied.values("aws_s3_bucket") if b["bucket"].endswith("-archive")
    ]
    table = _table(applied)
    parameters = table["Parameters"]
    descriptor = table["StorageDescriptor"]
    assert parameters["projection.enabled"] == "true"
    for key in table["PartitionKeys"]:
        assert parameters.get(f"projection.{key['Name']}.type"), key
        assert "${" + key["Name"] + "}" in parameters["storage.location.template"], key
    assert descriptor["Location"].startswith(f"s3://{archive}/")
    assert parameters["storage.location.template"].startswith(descriptor["Location"])
    assert "parquet" in descriptor["SerdeInfo"]["SerializationLibrary"].lower()
    assert "parquet" in descriptor["InputFormat"].lower()


def test_athena_workgroup_writes_results_to_its_bucket(applied: Applied) -> None:
    """Planned, not applied (MOTO_CANNOT_APPLY): the plan's values, against what was applied."""
    buckets = {b["bucket"] for b in applied.values("aws_s3_bucket")}
    workgroups = (
        applied.state.get("aws_athena_workgroup") or applied.planned["aws_athena_workgroup"]
    )
    for workgroup in workgroups:
        (configuration,) = workgroup["configuration"]
        assert configuration["enforce_workgroup_configuration"], workgroup
        (result,) = configuration["result_configuration"]
        location = result["output_location"]
        assert location.removeprefix("s3://").split("/", 1)[0] in buckets, location


def test_secrets_exist_and_hold_a_value(applied: Applied) -> None:
    secrets = applied.client("secretsmanager")
    versions = {v["secret_id"] for v in applied.state.get("aws_secretsmanager_secret_version", [])}
    for secret in applied.values("aws_secretsmanager_secret"):
        assert secrets.describe_secret(SecretId=secret["arn"])["Name"] == secret["name"]
        if secret["arn"] in versions:
            assert secrets.get_secret_value(SecretId=secret["arn"])["SecretString"]


def test_the_database_proxy_requires_tls_and_alarms_watch_it(applied: Applied) -> None:
    rds = applied.client("rds")
    for proxy in applied.values("aws_db_proxy"):
        (found,) = rds.describe_db_proxies(DBProxyName=proxy["name"])["DBProxies"]
        assert found["RequireTLS"], found
    alarms = applied.client("cloudwatch").describe_alarms()["MetricAlarms"]
    names = {a["AlarmName"] for a in alarms}
    assert {a["alarm_name"] for a in applied.values("aws_cloudwatch_metric_alarm")} <= names
    watched = {d["Value"] for a in alarms for d in a.get("Dimensions", [])}
    assert {p["name"] for p in applied.values("aws_db_proxy")} <= watched, watched


def test_only_the_google_ranges_reach_the_database_proxy(applied: Applied) -> None:
    ec2 = applied.client("ec2")
    google_ranges = set(json.loads(TEST_ARGS["client_cidrs"])) | {
        json.loads(TEST_VARS["connector_cidr"])
    }
    for proxy in applied.values("aws_db_proxy"):
        groups = ec2.describe_security_groups(GroupIds=proxy["vpc_security_group_ids"])
        ingress = [rule for group in groups["SecurityGroups"] for rule in group["IpPermissions"]]
        assert ingress, "nothing may reach the proxy"
        for rule in ingress:
            assert rule.get("FromPort") == rule.get("ToPort") == 5432, rule
            assert {r["CidrIp"] for r in rule.get("IpRanges", [])} <= google_ranges, rule
            assert not rule.get("Ipv6Ranges") and not rule.get("UserIdGroupPairs"), rule


def test_the_vpn_reaches_googles_interfaces_with_bgp(applied: Applied) -> None:
    ec2 = applied.client("ec2")
    interfaces = set(json.loads(TEST_ARGS["google_interface_ips"]))
    connections = ec2.describe_vpn_connections(
        VpnConnectionIds=[c["id"] for c in applied.values("aws_vpn_connection")]
    )["VpnConnections"]
    gateways = ec2.describe_customer_gateways(
        CustomerGatewayIds=[c["CustomerGatewayId"] for c in connections]
    )["CustomerGateways"]
    assert {g["IpAddress"] for g in gateways} == interfaces  # one connection per interface
    for connection in applied.values("aws_vpn_connection"):
        assert connection["static_routes_only"] is False, connection["id"]  # routes by BGP
