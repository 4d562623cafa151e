# The archive as a Glue/Athena table with partition projection (infra/athena/events_table.sql
# is the same table in SQL, for people and for DuckDB comparisons).

variable "prefix" {
  description = "Name prefix for this environment."
  type        = string
}

variable "archive_bucket" {
  description = "Name of the archive bucket."
  type        = string
}

locals {
  columns = {
    seq          = "bigint", creator_id = "string", twitch_message_id = "string", dedup_key = "string",
    type         = "string", version = "string", topic = "string", occurred_at = "timestamp",
    received_at  = "timestamp", broadcaster_user_id = "string", actor_user_id = "string",
    actor_login  = "string", actor_name = "string", target_user_id = "string",
    target_login = "string", target_name = "string", amount = "bigint", tier = "string",
    title        = "string", category_name = "string", duration_seconds = "int",
    message_text = "string", outcome = "string", level = "int", payload = "string"
  }
}

resource "aws_glue_catalog_database" "archive" {
  name = "${replace(var.prefix, "-", "_")}_controlroom"
}

resource "aws_glue_catalog_table" "events" {
  database_name = aws_glue_catalog_database.archive.name
  name          = "events"
  table_type    = "EXTERNAL_TABLE"
  parameters = {
    "classification"                = "parquet"
    "projection.enabled"            = "true"
    "projection.company_id.type"    = "injected"
    "projection.date.type"          = "date"
    "projection.date.format"        = "yyyy-MM-dd"
    "projection.date.range"         = "2024-01-01,NOW"
    "projection.date.interval"      = "1"
    "projection.date.interval.unit" = "DAYS"
    "storage.location.template"     = "s3://${var.archive_bucket}/events/company_id=$${company_id}/date=$${date}/"
  }
  partition_keys {
    name = "company_id"
    type = "string"
  }
  partition_keys {
    name = "date"
    type = "string"
  }
  storage_descriptor {
    location      = "s3://${var.archive_bucket}/events/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }
    dynamic "columns" {
      for_each = local.columns
      content {
        name = columns.key
        type = columns.value
      }
    }
  }
}

output "table" {
  description = "Athena table of the archive (database.table)."
  value       = "${aws_glue_catalog_database.archive.name}.${aws_glue_catalog_table.events.name}"
}
