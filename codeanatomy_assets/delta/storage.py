"""Where tables live: URIs, filesystems and object-store options.

A table URI is a local path, a ``file://`` URI or an object store (s3://, gs://, az://, abfss://, ...);
:func:`open_filesystem` turns one, with deltalake-style storage options, into a pyarrow filesystem
(pyarrow.fs for local paths and object stores alike).

>>> is_object_store_uri("s3://bucket/t"), is_object_store_uri("/data/t")
(True, False)
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from typing import Final, Literal

import pyarrow.fs as pafs

_OBJECT_STORE_SCHEMES: Final = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "azure"})


def is_object_store_uri(uri: str) -> bool:
    """Whether ``uri`` names an object store (s3://, gs://, az://, abfss://, ...)."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    return scheme in _OBJECT_STORE_SCHEMES


def local_table_path(uri: str) -> str | None:
    """The absolute local path of a table URI (a plain path or ``file://``), else ``None``."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "file":
        return os.path.abspath(urllib.parse.unquote(parts.path))
    if parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        return os.path.abspath(uri)
    return None


def _option(options: Mapping[str, str], *names: str) -> str | None:
    lowered = {k.lower(): v for k, v in options.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value not in (None, ""):
            return value
    return None


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def open_filesystem(
    uri: str, storage_options: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the table's root path inside it.

    Local paths use ``LocalFileSystem``; s3/gs/az URIs build the matching pyarrow filesystem from the
    deltalake-style storage options (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``,
    ``AZURE_STORAGE_ACCOUNT_NAME``, ...). Raises ``ValueError``/``OSError``/``ArrowException`` when that is
    not possible; callers turn the failure into a ``log_not_readable_directly`` finding.
    """
    options = dict(storage_options or {})
    local = local_table_path(uri)
    if local is not None:
        return pafs.LocalFileSystem(), local
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    root = (parts.netloc + parts.path).rstrip("/")
    if scheme in {"s3", "s3a"}:
        return _s3_filesystem(options), root
    if scheme in {"gs", "gcs"}:
        return _gcs_filesystem(options), root
    if scheme in {"az", "abfs", "abfss", "adl", "azure"}:
        return _azure_filesystem(options, parts)
    raise ValueError(f"no pyarrow filesystem for scheme {scheme!r}")


def _gcs_filesystem(options: Mapping[str, str]) -> pafs.GcsFileSystem:
    token = _option(options, "GOOGLE_ACCESS_TOKEN", "google_access_token")
    anonymous = truthy(_option(options, "GOOGLE_ANONYMOUS", "anonymous"))
    return pafs.GcsFileSystem(access_token=token, anonymous=anonymous)


def _azure_filesystem(
    options: Mapping[str, str], parts: urllib.parse.SplitResult
) -> tuple[pafs.AzureFileSystem, str]:
    """The Azure filesystem of ``container[@account...]/path`` and the root inside it (the container's)."""
    container, at, host = parts.netloc.partition("@")
    account = _option(options, "AZURE_STORAGE_ACCOUNT_NAME", "azure_storage_account_name", "account_name")
    if account is None and at:
        account = host.split(".", 1)[0]
    if account is None:
        raise ValueError("no Azure storage account name in the storage options or the URI")
    key = _option(options, "AZURE_STORAGE_ACCOUNT_KEY", "azure_storage_account_key", "account_key")
    return pafs.AzureFileSystem(account_name=account, account_key=key), (container + parts.path).rstrip("/")


def _s3_endpoint(options: Mapping[str, str]) -> tuple[str | None, Literal["http", "https"]]:
    """The S3 endpoint override (host[:port][/path]) and the scheme to reach it with."""
    endpoint = _option(
        options, "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "aws_endpoint_url", "endpoint_url", "endpoint"
    )
    if endpoint is None:
        return None, "https"
    if "://" not in endpoint:  # (urlsplit reads "minio:9000" as scheme "minio")
        return endpoint, "http" if truthy(_option(options, "AWS_ALLOW_HTTP", "allow_http")) else "https"
    split = urllib.parse.urlsplit(endpoint)
    if split.scheme not in {"http", "https"}:
        raise ValueError(f"the S3 endpoint {endpoint!r} is neither http:// nor https://")
    return split.netloc + split.path.rstrip("/"), "http" if split.scheme == "http" else "https"


def _s3_filesystem(options: Mapping[str, str]) -> pafs.S3FileSystem:
    endpoint, scheme = _s3_endpoint(options)
    return pafs.S3FileSystem(
        access_key=_option(options, "AWS_ACCESS_KEY_ID", "access_key_id"),
        secret_key=_option(options, "AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        session_token=_option(options, "AWS_SESSION_TOKEN", "session_token", "token"),
        region=_option(options, "AWS_REGION", "AWS_DEFAULT_REGION", "region") or "us-east-1",
        endpoint_override=endpoint,
        scheme=scheme,
        connect_timeout=5,
        request_timeout=10,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=2),
        allow_bucket_creation=False,
        allow_bucket_deletion=False,
    )


def file_key(uri: str) -> str:
    """A file location without scheme and leading slashes (``file:///a/b`` and ``/a/b`` alike)."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return uri.lstrip("/")


def file_uri_root(uri: str) -> str | None:
    """The local path a ``file://`` URI names, percent-decoded (``None`` for any other scheme).

    >>> file_uri_root("file:///data/a%20b%3Fc/")
    '/data/a b?c'
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "file":
        return None
    return urllib.parse.unquote(parts.path).rstrip("/") or "/"


def file_uri_path(uri: str) -> str:
    """The local path a ``file://`` URI names, percent-decoded (any other URI unchanged)."""
    if uri.startswith("file://"):
        return urllib.parse.unquote(uri[len("file://") :])
    return uri
