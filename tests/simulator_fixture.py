"""The Azure OpenAI simulator in a subprocess, for tests (fixture ``azure_simulator``).

``SimulatorProcess(...).start()`` runs ``python -m apps.simulator`` on a free loopback port and
waits until it answers. Attributes: ``url``, ``api_key``, ``identity_endpoint``,
``identity_header``; ``path_prefixes=`` makes it answer gateway-shaped paths too; methods ``requests(deployment=None)``, ``reset()``, ``config_yaml(**overrides)``
and ``stop()``.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAT_VERSION = "2024-10-21"
IMAGE_VERSION = "2024-02-01"
GPT_IMAGE_VERSION = "2025-04-01-preview"
ENDPOINT_FLAGS = {
    "titleConvo": True,
    "titleModel": "gpt-4o-mini",
    "titleMethod": "completion",
    "summarize": True,
    "summaryModel": "gpt-4o-mini",
    "plugins": True,
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SimulatorProcess:
    def __init__(self, *, config_text=None, api_key="sim-key", identity_header="sim-identity-header",
                 path_prefixes=()):
        self.config_text = config_text
        self.path_prefixes = tuple(path_prefixes)  # gateway shapes (--path-prefix)
        self.api_key = api_key
        self.identity_header = identity_header
        self.process = None
        self.url = None
        self._config_file = None
        self._log = None

    @property
    def identity_endpoint(self):
        return f"{self.url}/msi/token"

    def start(self, timeout=30):
        args = [sys.executable, "-m", "apps.simulator", "--host", "127.0.0.1"]
        if self.config_text:
            self._config_file = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
            self._config_file.write(self.config_text)
            self._config_file.close()
            args += ["--config", self._config_file.name]
        for prefix in self.path_prefixes:
            args += ["--path-prefix", prefix]
        env = {**os.environ, "LAPIS_TIKTOKEN_DOWNLOAD": "0"}
        self._log = tempfile.TemporaryFile()
        for _attempt in range(3):
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            self.process = subprocess.Popen(
                [*args, "--port", str(port)], cwd=ROOT, env=env,
                stdout=self._log, stderr=subprocess.STDOUT,
            )
            if self._wait(timeout):
                return self
            self.process.kill()
            self.process.wait()
        self._log.seek(0)
        raise RuntimeError("the simulator did not start:\n" + self._log.read().decode(errors="replace"))

    def _wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/_sim/health", timeout=2) as response:
                    if response.status == 200:
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._config_file:
            os.unlink(self._config_file.name)

    # --------------------------------------------------------------- control
    def _call(self, method, path):
        request = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def requests(self, deployment=None):
        """The request log, oldest first; each entry: method, path, query, headers (keys masked),
        json, deployment, status, outcome ("completed" | "client_disconnected" | "error")."""
        entries = self._call("GET", "/_sim/requests")
        return [e for e in entries if deployment is None or e["deployment"] == deployment]

    def reset(self):
        """Clear the request log, the times=K counters and the rate-limit windows."""
        self._call("POST", "/_sim/reset")

    def config_yaml(self, **overrides):
        """A Lapis model-group YAML whose groups point at this simulator.

        Keyword overrides set endpoint-level keys (``titleConvo=False``, ``plugins=False``, ...;
        ``None`` removes a key); ``version=`` changes the chat group's api-version,
        ``chat_models=`` / ``image_models=`` replace a group's models and ``extra_groups=``
        appends groups.
        """
        chat_models = overrides.pop("chat_models", None) or {
            "gpt-4o": {"deploymentName": "gpt-4o"},
            "gpt-4o-mini": {"deploymentName": "gpt-4o-mini"},
            "gpt-35-turbo": {"deploymentName": "gpt-35-turbo", "vision": False},
            "small-window": {"deploymentName": "small-window", "contextWindow": 1200},
        }
        image_models = overrides.pop("image_models", None) or {
            "dall-e-3": {"deploymentName": "dall-e-3"},
            "gpt-image-1": {"deploymentName": "gpt-image-1", "version": GPT_IMAGE_VERSION},
        }
        version = overrides.pop("version", CHAT_VERSION)
        extra_groups = overrides.pop("extra_groups", None) or []
        endpoint = dict(ENDPOINT_FLAGS)
        for key, value in overrides.items():
            if value is None:
                endpoint.pop(key, None)
            else:
                endpoint[key] = value
        endpoint["groups"] = [
            {"group": "simulator", "apiKey": "${LAPIS_SIM_KEY}", "endpoint": self.url,
             "version": version, "models": chat_models},
            {"group": "simulator-images", "apiKey": "${LAPIS_SIM_KEY}", "endpoint": self.url,
             "version": IMAGE_VERSION, "models": image_models},
            *extra_groups,
        ]
        return yaml.safe_dump({"endpoints": {"azureOpenAI": endpoint}}, sort_keys=False)
