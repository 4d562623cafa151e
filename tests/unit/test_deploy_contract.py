"""The deploy contract, read from both sides: what each deployable's code reads and needs
(controlroom/settings.py, the google.cloud imports) against what envs/common/main.tf and the
modules give it (environment, secrets with versions, enabled APIs, service account roles).

The Google provider cannot be installed offline, so these read the configuration's text
(tests/infra/hcl.py) instead of a plan.
"""

from __future__ import annotations

import datetime
import functools
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlroom import settings
from controlroom.errors import SettingsError
from tests.infra import contract, hcl

ROOT = contract.ROOT
MODULES = contract.MODULES

# Settings with a default that is wrong in production: terraform must set them.
NEEDED_IN_PRODUCTION = {
    "webhook": {
        "PERSIST_INVOKER_SERVICE_ACCOUNT": "tasks carry no OIDC token without it: persist refuses",
        "TRUSTED_PROXY_HOPS": "Cloud Run's front end appends to X-Forwarded-For: without 1 "
        "every client shares one rate-limit bucket",
    },
    "subscriptions": {
        "TWITCH_CLIENT_ID": "subscriptions are off without the Twitch application",
        "TWITCH_CLIENT_SECRET": "subscriptions are off without the Twitch application",
        "EVENTSUB_CALLBACK_URL": "subscriptions are off without the callback",
        "EVENTSUB_SECRET": "subscriptions are off without the signing secret",
    },
    "archive": {
        "ARCHIVE_RETENTION_DAYS": "without it PostgreSQL keeps every event forever",
        "BRANDING_BUCKET": "a purged company's logos would stay",
    },
    "realtime": {
        "PUBLIC_URL": "redirects, cookies and our tokens' issuer",
        "OIDC_ISSUER": "sign-in is off without it",
        "OIDC_CLIENT_ID": "sign-in",
        "OIDC_CLIENT_SECRET": "sign-in",
        "SESSION_SECRET": "sign-in's state cookie",
        "TOKEN_SIGNING_KEYS": "sign-in issues our tokens",
        "TWITCH_CLIENT_ID": "logins are resolved with the Twitch application",
        "TWITCH_CLIENT_SECRET": "logins are resolved with the Twitch application",
        "SUBSCRIPTIONS_URL": "roster changes reach functions/subscriptions",
        "SUBSCRIPTIONS_QUEUE": "roster changes reach functions/subscriptions",
        "SUBSCRIPTIONS_INVOKER_SERVICE_ACCOUNT": "tasks to subscriptions carry an OIDC token",
        "GOOGLE_CLOUD_PROJECT": "the Cloud Tasks queue's project",
        "CLOUD_TASKS_LOCATION": "the Cloud Tasks queue's location",
        "TRUSTED_PROXY_HOPS": "Cloud Run's front end appends to X-Forwarded-For: without 1 "
        "every client shares one rate-limit bucket",
    },
}
# AWS identity and region: needed wherever a deployable reads them (they have no right default)
AWS_NEEDED = {"AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_AUDIENCE"}
# Local stand-ins and development switches: terraform never sets them.
DEVELOPMENT_ONLY = re.compile(
    r".*_EMULATOR_HOST|AWS_ENDPOINT_URL.*|GCE_METADATA_HOST|AWS_ACCESS_KEY_ID|DEV_TOKEN_SIGN_IN"
    r"|COOKIE_SECURE|RATE_LIMITS|TWITCH_(AUTHORIZE|VALIDATE|TOKEN)_URL|HELIX_API_URL|RELAY_URL"
)
# Read by libraries, not by our code: boto3 and the Google client libraries.
LIBRARY_READS = {"AWS_REGION", "AWS_DEFAULT_REGION", "GOOGLE_CLOUD_PROJECT"}


def _aws_deployables() -> set[str]:
    return {d for d in contract.DEPLOYABLES if contract.deployable_reads(d) & AWS_NEEDED}


@pytest.mark.parametrize("deployable", contract.DEPLOYABLES)
def test_every_setting_without_a_production_default_is_set_by_terraform(deployable: str) -> None:
    reads = contract.deployable_reads(deployable)
    given = contract.terraform_names(deployable)
    needed = set(NEEDED_IN_PRODUCTION.get(deployable, {})) | (reads & AWS_NEEDED)
    assert needed <= reads, f"no longer read (update this test): {sorted(needed - reads)}"
    missing = {n: NEEDED_IN_PRODUCTION.get(deployable, {}).get(n, "AWS") for n in needed - given}
    assert not missing, f"{deployable}: terraform does not set {missing}"


@functools.cache
def _certificate() -> str:
    """A self-signed CA certificate in PEM (what Memorystore's CA looks like to the settings)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _value(name: str) -> str:
    """A value of the right shape for a variable, whatever it holds."""
    if name == "DATABASE_URL":
        return "postgresql://controlroom_app@proxy.example.test:5432/controlroom?sslmode=require"
    if name == "REDIS_URL":  # the redis-url secret terraform writes: TLS, with AUTH
        return "rediss://:auth@redis.example.test:6378/0"
    if name.endswith("_CA_CERT"):
        return _certificate()
    if name.endswith(("_URL", "_ISSUER")):
        return "https://service.example.test"
    if name.endswith("_ORIGIN"):
        return "https://images.example.test"
    if name.endswith(
        ("_PORT", "_DAYS", "_SECONDS", "_HOPS", "_MS", "_LIMIT", "_PAGE", "_CONCURRENCY", "_SHARDS")
    ):
        return "1"
    if name.endswith("_IAM_AUTH") or name.startswith("SMTP_STARTTLS"):
        return "true"
    if name == "AWS_ROLE_ARN":
        return "arn:aws:iam::123456789012:role/cr-dev-controlroom-test"
    if name == "AWS_REGION":
        return "eu-west-1"
    return "value"


# the database engines' settings are alternatives: terraform gives one set or the other
AURORA_ONLY = {"DATABASE_URL", "DATABASE_IAM_AUTH"}
CLOUD_SQL_ONLY = {"CLOUD_SQL_INSTANCE", "DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_NAME"}


@pytest.mark.parametrize("engine", ["aurora", "cloud_sql"])
@pytest.mark.parametrize("deployable", contract.DEPLOYABLES)
def test_the_settings_load_from_exactly_what_terraform_gives(deployable: str, engine: str) -> None:
    """Each deployable's from_env succeeds with terraform's variables and nothing else."""
    cls = getattr(settings, contract.settings_class(deployable))
    names = contract.terraform_names(deployable) - (
        CLOUD_SQL_ONLY if engine == "aurora" else AURORA_ONLY
    )
    try:
        cls.from_env({name: _value(name) for name in names})
    except SettingsError as error:
        pytest.fail(f"{deployable} ({engine}) with terraform's variables only: {error}")


@pytest.mark.parametrize("deployable", contract.DEPLOYABLES)
def test_terraform_sets_nothing_the_code_does_not_read(deployable: str) -> None:
    read_anywhere = contract.code_literals() | LIBRARY_READS
    given = contract.terraform_names(deployable)
    unread = {n for n in given if n not in contract.deployable_reads(deployable)}
    assert unread <= read_anywhere, f"{deployable}: nothing reads {sorted(unread - read_anywhere)}"
    development = {n for n in given if DEVELOPMENT_ONLY.fullmatch(n)}
    assert not development, f"{deployable}: development-only settings in production: {development}"


def test_terraform_gives_every_deployable_a_configuration() -> None:
    for deployable in contract.DEPLOYABLES:
        assert contract.terraform_names(deployable), deployable
    assert _aws_deployables(), "no deployable reads the AWS identity settings"


# --- secrets --------------------------------------------------------------------------------


def _secrets_call() -> hcl.Block:
    (call,) = [
        b
        for b in hcl.folder_blocks(contract.ENV, "module")
        if b.attributes()["source"].strip('"').endswith("/gcp_secrets")
    ]
    return call


def _expanded(expression: str) -> str:
    local = expression.removeprefix("local.")
    return contract.env_locals().get(local, expression) if local != expression else expression


def _env_text() -> str:
    return "\n".join(p.read_text() for p in sorted(contract.ENV.glob("*.tf")))


def _given_secrets(expression: str | None) -> set[str]:
    """Names of the secrets whose versions the operator adds (the module's `given`)."""
    if expression is None:
        return set()
    variables = {b.labels[0]: b for b in hcl.folder_blocks(contract.ENV, "variable")}
    name = expression.removeprefix("var.")
    if name in variables:
        return hcl.object_keys(variables[name].attributes().get("default", "{}"))
    return hcl.object_keys(_expanded(expression))


def test_every_secret_a_deployable_reads_has_a_version_before_the_deploys() -> None:
    call = _secrets_call().attributes()
    created = hcl.object_keys(_expanded(call["readers"]))
    assert "values" in call, "the secrets are created without versions"
    versioned = hcl.object_keys(_expanded(call["values"]))
    # the operator's own values (Twitch, OIDC client secrets...): added before the deploy as the
    # first step of docs/deploy.md, their version numbers given to the module
    given = _given_secrets(call.get("given"))
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for name in given:
        assert name in guide and "gcloud secrets versions add" in guide, (
            f"{name}: supplied out of band, but docs/deploy.md does not say how"
        )
    referenced = set(
        re.findall(r'(?:module\.secrets\.\w+|local\.secret)\["([\w-]+)"\]', _env_text())
    )
    assert referenced, "no deployable reads a secret?"
    assert referenced <= created, f"read but never created: {sorted(referenced - created)}"
    unversioned = created - versioned - given
    assert not unversioned, f"created without a version: {sorted(unversioned)}"
    # the deployables name the secrets through an output that waits for the versions
    outputs = {b.labels[0]: b.body for b in hcl.folder_blocks(MODULES / "gcp_secrets", "output")}
    used = set(re.findall(r"module\.secrets\.(\w+)\[", _env_text()))
    used |= set(re.findall(r"module\.secrets\.(\w+)\b", contract.env_locals().get("secret", "")))
    assert used, "the deployables do not take the secrets from the module"
    for output in used:
        assert "google_secret_manager_secret_version" in outputs[output], (
            f"module.secrets.{output} does not depend on the versions: a deploy can race them"
        )
    resources = {b.labels[0] for b in hcl.folder_blocks(MODULES / "gcp_secrets", "resource")}
    assert "google_secret_manager_secret_version" in resources


# --- Google APIs ----------------------------------------------------------------------------

# google.cloud.<package> -> the API the client calls
CLIENT_APIS = {
    "firestore": "firestore.googleapis.com",
    "firestore_v1": "firestore.googleapis.com",
    "tasks_v2": "cloudtasks.googleapis.com",
    "sql": "sqladmin.googleapis.com",
    "secretmanager": "secretmanager.googleapis.com",
    "storage": "storage.googleapis.com",
    "logging": "logging.googleapis.com",
    "monitoring": "monitoring.googleapis.com",
    "pubsub": "pubsub.googleapis.com",
}
# terraform resource type prefix -> the APIs creating it needs
RESOURCE_APIS = {
    "google_cloudfunctions2_": {
        "cloudfunctions.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "run.googleapis.com",
    },
    "google_cloud_run_": {"run.googleapis.com"},
    "google_redis_": {"redis.googleapis.com"},
    "google_vpc_access_": {"vpcaccess.googleapis.com"},
    "google_cloud_tasks_": {"cloudtasks.googleapis.com"},
    "google_cloud_scheduler_": {"cloudscheduler.googleapis.com"},
    "google_secret_manager_": {"secretmanager.googleapis.com"},
    "google_firestore_": {"firestore.googleapis.com"},
    "google_compute_": {"compute.googleapis.com"},
    "google_monitoring_": {"monitoring.googleapis.com"},
    "google_logging_": {"logging.googleapis.com"},
    "google_sql_": {"sqladmin.googleapis.com"},
    "google_service_networking_": {"servicenetworking.googleapis.com"},
    "google_artifact_registry_": {"artifactregistry.googleapis.com"},
    "google_iam_workload_identity_pool": {
        "iam.googleapis.com",
        "sts.googleapis.com",
        "iamcredentials.googleapis.com",
    },
    "google_service_account": {"iam.googleapis.com"},
}


def _code_apis() -> dict[str, set[str]]:
    """API -> the files whose google.cloud imports call it."""
    found: dict[str, set[str]] = {}
    pattern = re.compile(
        r"^\s*(?:from|import)\s+google\.cloud(?:\.(\w+))?(?:\s+import\s+(\w+))?", re.M
    )
    for folder in ("controlroom", "functions", "realtime"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.relative_to(ROOT).parts[1:2] == ("dev",):
                continue
            for package, name in pattern.findall(path.read_text()):
                key = package or name
                assert key in CLIENT_APIS, f"{path}: google.cloud.{key}: add its API to CLIENT_APIS"
                found.setdefault(CLIENT_APIS[key], set()).add(str(path.relative_to(ROOT)))
    return found


def _enabled_apis() -> set[str]:
    bootstrap = MODULES / "gcp_bootstrap"
    assert (bootstrap / "main.tf").is_file(), "no modules/gcp_bootstrap enables the APIs"
    text = "\n".join(p.read_text() for p in bootstrap.glob("*.tf"))
    assert "google_project_service" in text
    return set(re.findall(r'"([a-z0-9-]+\.googleapis\.com)"', text))


def test_every_google_api_the_code_calls_is_enabled_by_the_bootstrap() -> None:
    used = _code_apis()
    assert "firestore.googleapis.com" in used and "cloudtasks.googleapis.com" in used
    missing = {api: files for api, files in used.items() if api not in _enabled_apis()}
    assert not missing, f"not enabled: {missing}"


def test_every_google_api_the_resources_need_is_enabled_by_the_bootstrap() -> None:
    enabled = _enabled_apis()
    missing: dict[str, set[str]] = {}
    for folder in sorted(MODULES.glob("gcp_*")):
        for block in hcl.folder_blocks(folder, "resource"):
            for prefix, apis in RESOURCE_APIS.items():
                if block.labels[0].startswith(prefix):
                    for api in apis - enabled:
                        missing.setdefault(api, set()).add(block.labels[0])
    assert not missing, f"not enabled: {missing}"


def test_what_the_bootstrap_creates_is_what_the_modules_use() -> None:
    text = "\n".join(p.read_text() for p in (MODULES / "gcp_bootstrap").glob("*.tf"))
    for resource in (
        "google_artifact_registry_repository",
        "google_iam_workload_identity_pool",
        "google_iam_workload_identity_pool_provider",
        "google_service_account",
    ):
        assert f'resource "{resource}"' in text, f"the bootstrap does not create {resource}"


def test_the_contract_reader_sees_what_the_settings_read(tmp_path: Path) -> None:
    """The static reader follows nested settings classes and prefixed helpers."""
    reads = contract.deployable_reads("realtime")
    assert {"DATABASE_URL", "PUBLIC_URL", "SMTP_HOST", "RATE_LIMIT_AUTH_IP"} <= reads
    assert "RATE_LIMIT_AUTH_IP" in contract.deployable_reads("webhook")
    assert "DATABASE_URL" not in contract.deployable_reads("webhook")  # no database
