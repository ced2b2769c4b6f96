"""A real Lapis server for end-to-end tests: Daphne in a subprocess on its own fresh database.

On the embedded default each server gets a SQLite file in its own data directory; when the test
run itself is on PostgreSQL (``DATABASE_URL``), each server gets a new PostgreSQL database that
is dropped afterwards. ``REDIS_URL`` is passed through, so the websocket side runs on Redis too.
``database_url=`` makes a server use an existing database instead (several processes of one
deployment, e.g. ``LiveServer(dir, database_url=first.database_url)``); it is not dropped.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_ENDPOINT_HOSTS = "127.0.0.1,localhost"
# Daphne with Lapis's request bounds (project/server.py), as bin/serve and the image run it.
SERVER = [sys.executable, "-m", "project.server"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_admin(url, sql):
    import psycopg

    parts = urlsplit(url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


class PortTaken(Exception):
    """Daphne could not bind the port picked for it."""


class LiveServer:
    """Start with ``start()``; ``url`` is the base URL; ``manage()`` runs a command on its DB."""

    def __init__(self, data_dir, *, extra_env=None, database_url=None, command=None):
        self.data_dir = Path(data_dir)
        self.command = command or SERVER  # e.g. plain Daphne, for a benchmark's comparison
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.log_path = self.data_dir / "server.log"
        self._database_url = None  # a database this server created, dropped in stop()
        self.env = self._environment(extra_env or {}, database_url)
        # The database the server uses (None: SQLite in data_dir), to share with another server.
        self.database_url = self.env.get("DATABASE_URL")

    def _environment(self, extra_env, database_url=None):
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "CONFIG_PATH", "DEBUG")
        }
        env.update(
            DATA_DIR=str(self.data_dir),
            SECRET_KEY="live-test-" + uuid.uuid4().hex,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            LAPIS_TIKTOKEN_DOWNLOAD="0",
            PYTHONUNBUFFERED="1",
            # The simulator and recorders listen on loopback over plain http.
            CONFIG_ALLOWED_ENDPOINT_HOSTS=LOOPBACK_ENDPOINT_HOSTS,
            # Entra in tests uses the local identity endpoint only, never the metadata address.
            ENTRA_LOCAL_IDENTITY_ONLY="1",
        )
        base_url = os.environ.get("DATABASE_URL", "")
        if database_url:  # shared with another server: its owner creates and drops it
            env["DATABASE_URL"] = database_url
        elif base_url.startswith(("postgres://", "postgresql://")):
            name = "lapis_e2e_" + uuid.uuid4().hex[:10]
            _postgres_admin(base_url, f'CREATE DATABASE "{name}"')
            self._database_url = urlunsplit(urlsplit(base_url)._replace(path="/" + name))
            env["DATABASE_URL"] = self._database_url
        env.update(extra_env)
        return env

    def manage(self, *args, check=True):
        """Run ``manage.py ARGS`` against this server's database and data directory."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def shell(self, code):
        return self.manage("shell", "-v0", "-c", code).stdout

    def create_user(self, username, password, *, staff=False):
        self.shell(
            "from django.contrib.auth import get_user_model;"
            f"get_user_model().objects.create_user({username!r}, password={password!r},"
            f" is_staff={staff!r}, is_superuser={staff!r})"
        )

    def start(self, *, migrate=True, timeout=30):
        if migrate:
            self.manage("migrate", "--noinput", "-v0")
        for _ in range(3):
            try:
                return self._serve(timeout)
            except PortTaken:
                # free_port() released the port before Daphne bound it, and something took it.
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError(f"Lapis found no free port to listen on:\n{self.log()}")

    def _serve(self, timeout):
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*self.command, "-b", "127.0.0.1", "-p", str(self.port), "project.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.close()
                if "Address already in use" in self.log():
                    raise PortTaken
                raise RuntimeError(f"Lapis exited at start:\n{self.log()}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2)
                return self
            except urllib.error.HTTPError:
                return self  # it answers, even if unhealthy
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Lapis did not answer within {timeout}s:\n{self.log()}")

    def log(self):
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process:
            self._log.close()
        if self._database_url:
            _postgres_admin(
                os.environ["DATABASE_URL"],
                f'DROP DATABASE IF EXISTS "{urlsplit(self._database_url).path[1:]}" WITH (FORCE)',
            )
            self._database_url = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
