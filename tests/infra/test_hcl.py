"""The Terraform text reader the contract and the moto configuration rely on."""

from __future__ import annotations

from tests.infra import hcl

SAMPLE = """
# a comment with a brace {
module "functions" {
  source = "../../modules/gcp_functions" // another }
  environment = {
    webhook = merge(local.common, {
      PERSIST_URL = "https://${var.region}-x.net/${local.prefix}-persist"
      "QUOTED_KEY" = "{not a block}"
    })
    persist = local.common
  }
  note = <<-EOT
    module "fake" { a = 1 }
  EOT
  dynamic "thing" {
    for_each = var.things
    content { name = thing.key }
  }
}

locals {
  common = { GOOGLE_CLOUD_PROJECT = var.project }
  on     = var.engine == "aurora" ? { A = 1 } : { B = 2 }
}
"""


def test_blocks_attributes_and_expressions() -> None:
    modules = hcl.blocks(SAMPLE, "module")
    assert [m.labels for m in modules] == [("functions",)]  # not the heredoc's
    attributes = modules[0].attributes()
    assert set(attributes) == {"source", "environment", "note"}  # not the nested block's
    assert attributes["source"] == '"../../modules/gcp_functions"'
    items = hcl.object_items(attributes["environment"])
    assert set(items) == {"webhook", "persist"}
    assert hcl.object_keys(items["webhook"]) == {"PERSIST_URL", "QUOTED_KEY"}
    assert hcl.references(items["webhook"], "local") == {"common", "prefix"}
    assert hcl.references(items["webhook"], "var") == {"region"}
    assert [b.labels for b in modules[0].blocks("dynamic")] == [("thing",)]
    (local,) = hcl.blocks(SAMPLE, "locals")
    assert hcl.object_keys(local.attributes()["on"]) == {"A", "B"}  # both branches
    assert local.attributes()["common"] == "{ GOOGLE_CLOUD_PROJECT = var.project }"
