"""The archive as Athena reads it: the Glue table in terraform (aws_analytics) against the
Parquet the archive writes, and the bucket's lifecycle in terraform (aws_storage) against
the rules the local stack sets (adapters/s3.py lifecycle_rules)."""

from __future__ import annotations

import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import hcl2
import pyarrow as pa
import pytest

from controlroom.adapters import s3
from controlroom.core import tenants
from controlroom.usecases import archive

MODULES = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "modules"
# the Hive type Athena reads each Arrow type the archive writes as
HIVE_TYPES = {
    pa.string(): "string",
    pa.int64(): "bigint",
    pa.int32(): "int",
    pa.timestamp("us", tz="UTC"): "timestamp",
}
READABLE_BY_ATHENA = {"STANDARD", "STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR"}


def module(name: str) -> dict[str, Any]:
    with (MODULES / name / "main.tf").open() as f:
        doc: dict[str, Any] = hcl2.load(f)
    return doc


def resource(doc: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        block[kind][name] for block in doc["resource"] if name in block.get(kind, {})
    ]
    [only] = found
    return only


def merged(doc: dict[str, Any], section: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block in doc.get(section, []):
        out.update(block)
    return out


def evaluate(value: Any, scope: dict[str, Any]) -> Any:
    """Substitute `${name}` references from `scope`; a string that is one reference becomes
    the referenced value itself (a number stays a number)."""
    if not isinstance(value, str):
        return value
    whole = re.fullmatch(r"\$\{([\w.\[\]]+)\}", value)
    if whole:
        return scope[whole[1]]
    return re.sub(r"(?<!\$)\$\{([\w.\[\]]+)\}", lambda m: str(scope[m[1]]), value)


# --- the Glue table -------------------------------------------------------------------------


def glue_table() -> tuple[dict[str, Any], dict[str, Any]]:
    doc = module("aws_analytics")
    return resource(doc, "aws_glue_catalog_table", "events"), merged(doc, "locals")


def test_every_glue_column_is_the_parquet_column_the_archive_writes() -> None:
    table, local = glue_table()
    columns = [(name, kind) for name, kind in local["columns"]]
    # the dynamic block really iterates over the list, name then type
    [dynamic] = table["storage_descriptor"][0]["dynamic"]
    assert dynamic["columns"]["for_each"] == "${local.columns}"
    assert dynamic["columns"]["content"] == [
        {"name": "${columns.value[0]}", "type": "${columns.value[1]}"}
    ]
    partitions = [(p["name"], p["type"]) for p in table["partition_keys"]]
    assert partitions == [("company_id", "string"), ("day", "string")]
    written = [(f.name, HIVE_TYPES[f.type]) for f in archive.PARQUET_SCHEMA]
    # company_id is in every file and is the table's partition key (Hive allows a name once)
    assert ("company_id", "string") in written
    assert columns == [c for c in written if c[0] != "company_id"]
    assert len({name for name, _ in columns + partitions}) == len(columns) + len(partitions)


def test_the_table_reads_the_parquet_tree_only_and_one_company_at_a_time() -> None:
    table, local = glue_table()
    params = table["parameters"]
    storage = table["storage_descriptor"][0]
    assert params["classification"] == "parquet"
    assert "ParquetHiveSerDe" in storage["ser_de_info"][0]["serialization_library"]
    assert "MapredParquetInputFormat" in storage["input_format"]
    # company ids are UUIDs: injected, so a query that names no company is refused
    assert params["projection.enabled"] == "true"
    assert params["projection.company_id.type"] == "injected"
    assert params["projection.day.type"] == "date"
    assert params["projection.day.format"] == "yyyy-MM-dd"
    assert params["projection.day.range"] == "${var.first_archive_day},NOW"
    assert (params["projection.day.interval"], params["projection.day.interval.unit"]) == (
        "1",
        "DAYS",
    )
    # the projected location of a company-day is exactly where the archive puts its Parquet
    bucket, company, day = "the-archive", uuid.uuid4(), date(2026, 3, 1)
    scope = {"var.archive_bucket": bucket}
    root = evaluate(local["parquet_root"], scope)
    template = evaluate(params["storage.location.template"], {"local.parquet_root": root})
    projected = template.replace("$${company_id}", str(company)).replace("$${day}", day.isoformat())
    assert projected == f"s3://{bucket}/{archive.prefix(company, day, 'parquet')}"
    assert evaluate(storage["location"], {"local.parquet_root": root}) == (
        f"s3://{bucket}/events/parquet/"
    )
    ndjson = archive.prefix(company, day, "ndjson")
    assert not f"s3://{bucket}/{ndjson}".startswith(root)


def test_the_workgroup_enforces_encrypted_results_in_a_private_expiring_bucket() -> None:
    doc = module("aws_analytics")
    [config] = resource(doc, "aws_athena_workgroup", "archive")["configuration"]
    assert config["enforce_workgroup_configuration"] is True
    [result] = config["result_configuration"]
    assert result["output_location"].startswith("s3://${aws_s3_bucket.results.id}/")
    assert result["encryption_configuration"] == [
        {"encryption_option": "SSE_KMS", "kms_key_arn": "${aws_kms_key.results.arn}"}
    ]
    block = resource(doc, "aws_s3_bucket_public_access_block", "results")
    assert all(
        block[flag] is True
        for flag in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )
    [rule] = resource(doc, "aws_s3_bucket_server_side_encryption_configuration", "results")["rule"]
    assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    [expiry] = resource(doc, "aws_s3_bucket_lifecycle_configuration", "results")["rule"]
    assert expiry["expiration"] == [{"days": "${var.results_expiration_days}"}]
    assert resource(doc, "aws_kms_key", "results")["enable_key_rotation"] is True


def test_the_query_policy_reads_parquet_only() -> None:
    doc = module("aws_analytics")
    policy = next(
        block["aws_iam_policy_document"]["query"]
        for block in doc["data"]
        if "query" in block.get("aws_iam_policy_document", {})
    )
    archive_resources = [
        r for s in policy["statement"] for r in s["resources"] if "local.archive_arn" in r
    ]
    assert set(archive_resources) == {
        "${local.archive_arn}",
        "${local.archive_arn}/events/parquet/*",
    }
    listing = next(s for s in policy["statement"] if s["sid"] == "ListParquet")
    assert listing["condition"][0]["values"] == ["events/parquet/*"]


# --- the lifecycle: terraform and the local stack agree --------------------------------------


def terraform_rules(overrides: dict[str, int]) -> dict[str, Any]:
    """aws_storage's archive lifecycle as the S3 API receives it, its variables set to their
    defaults and `overrides`."""
    doc = module("aws_storage")
    variables = {
        f"var.{name}": overrides.get(name, spec.get("default"))
        for name, spec in merged(doc, "variable").items()
    }
    config = resource(doc, "aws_s3_bucket_lifecycle_configuration", "archive")

    def api(rule: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ID": evaluate(rule["id"], scope),
            "Status": rule["status"],
            "Filter": {"Prefix": evaluate(rule["filter"][0]["prefix"], scope)},
        }
        if "transition" in rule:
            out["Transitions"] = [
                {
                    "Days": evaluate(t["days"], scope),
                    "StorageClass": evaluate(t["storage_class"], scope),
                }
                for t in rule["transition"]
            ]
        if "noncurrent_version_expiration" in rule:
            days = rule["noncurrent_version_expiration"][0]["noncurrent_days"]
            out["NoncurrentVersionExpiration"] = {"NoncurrentDays": evaluate(days, scope)}
        if "abort_incomplete_multipart_upload" in rule:
            days = rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"]
            out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": evaluate(days, scope)}
        return out

    rules = []
    for dynamic in config.get("dynamic", []):
        spec = dynamic["rule"]
        source = spec["for_each"].removeprefix("${local.").removesuffix("}")
        for key, value in merged(doc, "locals")[source].items():
            scope = {**variables, "rule.key": key, "rule.value": value}
            rules.append(api(spec["content"][0], scope))
    rules += [api(rule, variables) for rule in config.get("rule", [])]
    return {"Rules": rules}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"infrequent_access_days": 45, "glacier_days": 180, "abort_multipart_days": 2},
        {"noncurrent_days": 5},
    ],
)
def test_terraform_and_the_local_stack_set_the_same_lifecycle(overrides: dict[str, int]) -> None:
    def by_id(doc: dict[str, Any]) -> dict[str, Any]:
        return {r["ID"]: r for r in doc["Rules"]}

    assert by_id(terraform_rules(overrides)) == by_id(s3.lifecycle_rules(**overrides))


def test_every_archive_object_has_a_lifecycle_and_parquet_stays_queryable() -> None:
    rules = s3.lifecycle_rules()["Rules"]
    company, day = uuid.uuid4(), date(2026, 3, 1)
    for fmt in archive.FORMATS:
        key = archive.object_key(company, day, fmt, "ab" * 32)
        [rule] = [
            r for r in rules if r["Filter"]["Prefix"] and key.startswith(r["Filter"]["Prefix"])
        ]
        classes = {t["StorageClass"] for t in rule["Transitions"]}
        if fmt == "parquet":
            assert classes <= READABLE_BY_ATHENA
        else:
            assert "GLACIER" in classes


def test_a_company_s_archive_prefixes_hold_all_its_objects_and_no_one_else_s() -> None:
    company, other, day = uuid.uuid4(), uuid.uuid4(), date(2026, 3, 1)
    prefixes = tenants.archive_prefixes(company)
    assert len(prefixes) == len(archive.FORMATS)
    for fmt in archive.FORMATS:
        mine = archive.object_key(company, day, fmt, "cd" * 32)
        theirs = archive.object_key(other, day, fmt, "cd" * 32)
        assert sum(mine.startswith(p) for p in prefixes) == 1
        assert not any(theirs.startswith(p) for p in prefixes)
        assert mine.startswith("events/")  # the workloads' role is limited to events/*
    with pytest.raises(ValueError, match="format"):
        tenants.archive_prefix(company, "csv")  # type: ignore[arg-type]


def test_s3_accepts_the_lifecycle_as_the_local_stack_sets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = s3.client(region="eu-west-1", credentials=("testing", "testing"))
        client.create_bucket(
            Bucket="archive", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        rules = s3.lifecycle_rules()
        client.put_bucket_lifecycle_configuration(
            Bucket="archive",
            LifecycleConfiguration=rules,  # type: ignore[arg-type]
        )
        stored = client.get_bucket_lifecycle_configuration(Bucket="archive")["Rules"]
    assert {r["ID"]: r["Filter"] for r in stored} == {r["ID"]: r["Filter"] for r in rules["Rules"]}
    by_id = {r["ID"]: r for r in stored}
    assert [t["StorageClass"] for t in by_id["parquet-tiering"]["Transitions"]] == [
        "STANDARD_IA",
        "GLACIER_IR",
    ]
    assert by_id["ndjson-tiering"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
