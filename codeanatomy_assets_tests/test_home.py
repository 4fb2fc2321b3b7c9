"""The project home and its lake: where things go, and where the lake's credentials come from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeanatomy_assets.errors import ConfigError
from codeanatomy_assets.home import LAKE_ENV, LAKE_OPTIONS_ENV, ProjectHome, lake_storage_options

SECRET = "canary-home-secret"


def test_the_default_lake_is_under_the_home(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path, env={})
    assert (home.lake, home.diagnostics) == (str(tmp_path / "lake"), str(tmp_path / "lake" / "_diagnostics"))
    assert home.dataset_uri("calls") == str(tmp_path / "lake" / "calls")
    assert not home.remote_lake
    assert home.storage_options == {}
    home.ensure()
    assert (tmp_path / "lake" / "_diagnostics").is_dir()


def test_a_local_lake_elsewhere_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    home = ProjectHome.resolve("home", env={LAKE_ENV: "file://shared/lake"})
    assert home.lake == str(tmp_path / "shared" / "lake")
    home.ensure()
    assert (tmp_path / "shared" / "lake" / "_diagnostics").is_dir()


def test_an_object_store_lake_creates_no_local_folder(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path, env={}, lake="s3://bucket/prefix/").ensure()
    assert home.remote_lake
    assert (home.lake, home.dataset_uri("calls")) == ("s3://bucket/prefix", "s3://bucket/prefix/calls")
    assert home.diagnostics == "s3://bucket/prefix/_diagnostics"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dagster", "reports"]


def test_the_flag_wins_over_the_environment(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path, env={LAKE_ENV: "s3://from-env/x"}, lake="s3://from-flag/y")
    assert home.lake == "s3://from-flag/y"


def test_aws_variables_are_overridden_key_by_key_by_the_json_options() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "eu-west-1",
        "HOME": "/root",
        LAKE_OPTIONS_ENV: json.dumps(
            {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}
        ),
    }
    assert lake_storage_options("s3://b/lake", env) == {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    }
    assert lake_storage_options("gs://b/lake", env) == {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    }
    assert lake_storage_options("/local/lake", env) == {}


def test_credentials_stay_out_of_repr_and_comparisons(tmp_path: Path) -> None:
    env = {"AWS_SECRET_ACCESS_KEY": SECRET}
    home = ProjectHome.resolve(tmp_path, env=env, lake="s3://b/lake")
    assert home.storage_options == {"AWS_SECRET_ACCESS_KEY": SECRET}
    assert SECRET not in repr(home)
    assert home == ProjectHome.resolve(tmp_path, env={}, lake="s3://b/lake")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'{{"AWS_SECRET_ACCESS_KEY": "{SECRET}"', "not valid JSON"),
        (f'["{SECRET}"]', "must be a JSON object of string values"),
        (f'{{"AWS_SECRET_ACCESS_KEY": ["{SECRET}"]}}', "must be a JSON object of string values"),
    ],
)
def test_bad_json_options_are_a_config_error_that_quotes_no_secret(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        lake_storage_options("s3://b/lake", {LAKE_OPTIONS_ENV: text})
    assert SECRET not in str(caught.value)
    assert str(caught.value).startswith(LAKE_OPTIONS_ENV)
