from __future__ import annotations

import pytest

from controlroom.adapters import s3


def test_lifecycle_defaults() -> None:
    rules = {r["ID"]: r for r in s3.lifecycle_rules()["Rules"]}
    assert rules["archive-tiering"]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"},
        {"Days": 90, "StorageClass": "GLACIER"},
    ]
    assert rules["archive-tiering"]["Filter"] == {"Prefix": "events/"}
    assert rules["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }


@pytest.mark.parametrize(("ia", "glacier"), [(10, 90), (90, 90), (120, 60)])
def test_lifecycle_refuses_what_s3_would(ia: int, glacier: int) -> None:
    with pytest.raises(ValueError, match="infrequent_access_days"):
        s3.lifecycle_rules(ia, glacier)
