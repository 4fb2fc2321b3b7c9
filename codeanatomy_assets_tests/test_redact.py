"""Redaction: canary secrets never survive, everything else does."""

from __future__ import annotations

import json

import pytest

from codeanatomy_assets.diagnostics.redact import (
    REDACTED,
    is_secret_key,
    redact_headers,
    redact_mapping,
    redact_url,
)

CANARY = "canary-5b1d0c"


@pytest.mark.parametrize(
    "key",
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "api_key",
        "apiKey",
        "x-api-key",
        "password",
        "DB_PASSWD",
        "client_secret",
        "azure_storage_sas_token",
        "sas",
        "Authorization",
        "google_application_credentials",
        "session_id",
        "X-Amz-Signature",
        "sig",
        "connection_string",
    ],
)
def test_secret_looking_keys_are_redacted(key: str) -> None:
    assert is_secret_key(key)
    assert redact_mapping({key: CANARY}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key", ["region", "endpoint", "dagster.asset_key", "asset_key", "step_key", "partition_key", "author"]
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)
    assert redact_mapping({key: "v"}) == {key: "v"}


def test_nested_values_and_urls_are_redacted() -> None:
    config = {
        "storage": {"AWS_SECRET_ACCESS_KEY": CANARY, "AWS_REGION": "eu-west-1"},
        "mirrors": [f"https://bob:{CANARY}@example.com/repo", {"token": CANARY}],
        "empty_password": None,
        "retries": 3,
    }
    redacted = redact_mapping(config)
    assert CANARY not in json.dumps(redacted)
    assert redacted["storage"] == {"AWS_SECRET_ACCESS_KEY": REDACTED, "AWS_REGION": "eu-west-1"}
    assert redacted["mirrors"] == [f"https://{REDACTED}@example.com/repo", {"token": REDACTED}]
    assert redacted["empty_password"] is None  # nothing to hide
    assert redacted["retries"] == 3
    assert config["storage"]["AWS_SECRET_ACCESS_KEY"] == CANARY  # the input is not modified


def test_redact_url_userinfo_and_secret_query_params() -> None:
    url = f"https://user:{CANARY}@acct.blob.core.windows.net:443/c/f?sv=2022&sig={CANARY}&X-Amz-Credential={CANARY}#frag"
    redacted = redact_url(url)
    assert CANARY not in redacted
    assert redacted == (
        f"https://{REDACTED}@acct.blob.core.windows.net:443/c/f?sv=2022&sig={REDACTED}"
        f"&X-Amz-Credential={REDACTED}#frag"
    )


def test_redact_url_leaves_plain_urls_alone() -> None:
    for url in ("http://localhost:4318/v1/traces", "s3://bucket/path?versionId=3", "relative/path"):
        assert redact_url(url) == url


def test_redact_headers_keeps_names() -> None:
    headers = f"Authorization=Bearer%20{CANARY}, x-tenant = acme ,api-key={CANARY},,broken"
    redacted = redact_headers(headers)
    assert CANARY not in redacted
    assert redacted == f"Authorization={REDACTED},x-tenant={REDACTED},api-key={REDACTED},{REDACTED}"
    assert redact_headers("") == ""
