"""The Celery executor's settings without a broker: where the URLs come from, that a missing or malformed
one is a one-line usage error, that they reach Dagster by environment variable only and are recorded
redacted, and that the rebuilt job carries ``dagster_celery``'s executor. (The build on real workers:
``test_celery.py``.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codeanatomy_assets.celery_settings import (
    BACKEND_ENV,
    BROKER_ENV,
    CELERY_BACKEND_ENV,
    CELERY_BROKER_ENV,
    CelerySettings,
)
from codeanatomy_assets.diagnostics.redact import REDACTED
from codeanatomy_assets.errors import ConfigError
from codeanatomy_assets.runner import Executor, celery_settings, reconstruct_build_job
from codeanatomy_assets_tests.cli import run_cli

CANARY = "canary-celery-7a1"
BROKER = f"redis://:{CANARY}@broker.internal:6379/0"
FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"


def test_the_flags_win_over_the_environment() -> None:
    env = {BROKER_ENV: "redis://env:6379/0", BACKEND_ENV: "redis://env:6379/1"}
    settings = CelerySettings.resolve(broker="redis://flag:6379/0", backend="redis://flag:6379/1", env=env)
    assert (settings.broker, settings.backend) == ("redis://flag:6379/0", "redis://flag:6379/1")
    settings = CelerySettings.resolve(env=env)
    assert (settings.broker, settings.backend) == ("redis://env:6379/0", "redis://env:6379/1")


@pytest.mark.parametrize(
    ("broker", "backend"),
    [
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("rediss://h:6380/0", "rediss://h:6380/0"),
        ("pyamqp://guest@h//", "rpc://"),  # Celery 5 has no AMQP result backend: the RPC one
    ],
)
def test_the_backend_defaults_by_broker(broker: str, backend: str) -> None:
    assert CelerySettings.resolve(broker=broker, env={}).backend == backend


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        (None, "--celery-broker / CODEANATOMY_CELERY_BROKER: the celery executor needs a broker URL"),
        ("localhost:6379", "--celery-broker / CODEANATOMY_CELERY_BROKER: not a URL"),
    ],
)
def test_a_missing_or_malformed_broker_is_a_config_error(broker: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        CelerySettings.resolve(broker=broker, env={})
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_the_urls_are_recorded_redacted_and_passed_by_environment_variable() -> None:
    settings = CelerySettings.resolve(broker=BROKER, env={})
    assert settings.snapshot() == {
        "broker": f"redis://{REDACTED}@broker.internal:6379/0",
        "backend": f"redis://{REDACTED}@broker.internal:6379/0",
    }
    assert CANARY not in repr(settings)
    assert CANARY not in repr(settings.run_config())
    assert settings.run_config()["execution"]["config"] == {
        "broker": {"env": CELERY_BROKER_ENV},
        "backend": {"env": CELERY_BACKEND_ENV},
    }


def test_exported_sets_the_urls_for_the_run_and_restores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CELERY_BROKER_ENV, "redis://before:6379/0")
    monkeypatch.delenv(CELERY_BACKEND_ENV, raising=False)
    settings = CelerySettings.resolve(broker=BROKER, backend="redis://b:6379/1", env={})
    with settings.exported():
        assert (os.environ[CELERY_BROKER_ENV], os.environ[CELERY_BACKEND_ENV]) == (BROKER, "redis://b:6379/1")
    assert os.environ[CELERY_BROKER_ENV] == "redis://before:6379/0"
    assert CELERY_BACKEND_ENV not in os.environ


def test_only_the_celery_executor_has_celery_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BROKER_ENV, BROKER)
    assert celery_settings(Executor.MULTIPROCESS) is None
    settings = celery_settings(Executor.CELERY, backend="redis://other:6379/1")
    assert settings is not None and settings.broker == BROKER and settings.backend == "redis://other:6379/1"


def test_the_rebuilt_job_runs_on_the_celery_executor() -> None:
    kwargs = {"spec": "builtin:codeanatomy", "source": str(FIXTURE), "home": "/nonexistent", "lake": ""}
    assert reconstruct_build_job(**kwargs, capture=True, executor="celery").executor_def.name == "celery"
    assert reconstruct_build_job(**kwargs, capture=True).executor_def.name != "celery"


def test_the_cli_without_a_broker_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (BROKER_ENV, BACKEND_ENV):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    proc = run_cli(
        "build", "--source", str(FIXTURE), "--home", str(home), "--executor", "celery", cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "codeanatomy build: error: --celery-broker / CODEANATOMY_CELERY_BROKER: the celery executor needs "
        "a broker URL (e.g. redis://host:6379/0)"
    ]
    assert not home.exists()  # nothing written
