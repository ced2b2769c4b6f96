"""compose.yaml and its nginx: the file's layout, ``nginx -t``, and the layout run without
containers: real Lapis processes behind a real nginx with deploy/nginx.conf.

No container engine runs here, so the compose service names (``lapis-a``, ``lapis-b``) become
loopback ports in a copy of the config: nginx resolves upstream names when it loads the file,
and nothing else is changed. The nginx binary comes from Debian (``make test`` installs it as
root, like Chromium); without it these tests are skipped saying so.
"""

import os
import shutil
import subprocess
import time
import urllib.request
import uuid

import aiohttp
import pytest
import yaml

from tests.chat.test_multiprocess import Browserless
from tests.conftest import TEST_PASSWORD
from tests.live import ROOT, LiveServer, free_port
from tests.observability.conftest import TOKEN, samples, total

NGINX = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
needs_nginx = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK),
    reason=f"nginx is not installed ({NGINX}): `make test` installs Debian's nginx as root, "
    "or apt-get install nginx / set NGINX=/path/to/nginx",
)
SEVERAL = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")) and bool(
    os.environ.get("REDIS_URL")
)
COMPOSE = ROOT / "compose.yaml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def local_config(directory, *, listen, upstreams):
    """deploy/nginx.conf with ``listen`` (a loopback port) and the two processes at
    ``upstreams`` (two "127.0.0.1:PORT"); returns the file."""
    text = NGINX_CONF.read_text()
    for name, address in zip(("lapis-a:8000", "lapis-b:8000"), upstreams, strict=True):
        assert text.count(f"server {name} ") == 1, f"{name} is not an upstream of {NGINX_CONF}"
        text = text.replace(f"server {name} ", f"server {address} ")
    assert text.count("listen 8080;") == 1
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


def nginx_command(directory, config, *extra):
    globals_ = f"pid {directory}/nginx.pid;"
    if os.geteuid() == 0:  # workers as root: the temp dirs are under a 0700 pytest directory
        globals_ += " user root;"
    return [NGINX, "-p", str(directory), "-c", str(config), "-g", globals_, *extra]


def test_compose_file_has_the_multi_process_layout():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "lapis-a", "lapis-b", "proxy", "simulator"} <= set(services)
    a, b = services["lapis-a"], services["lapis-b"]
    assert a["environment"] == b["environment"]  # one deployment: same database, Redis, key
    env = a["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # required, never a default
    assert env["TRUSTED_PROXY_COUNT"] == "1"
    assert env["METRICS_ADDRESS"].endswith(":9100")
    assert "project.server" in a["command"] and "--proxy-headers" in a["command"]
    assert a["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "lapis-data:/data" in a["volumes"] == b["volumes"]  # uploads: any process serves them
    # Only the proxy is published; the processes, the database and Redis stay inside.
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy", "prometheus"}
    assert services["prometheus"]["ports"][0].startswith("127.0.0.1:")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["proxy"]["volumes"]
    assert {"lapis-a", "lapis-b"} <= set(services["proxy"]["depends_on"])
    assert services["simulator"]["profiles"] == ["demo"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["lapis-a:9100", "lapis-b:9100"]


@needs_nginx
def test_nginx_accepts_the_proxy_config(tmp_path):
    config = local_config(tmp_path, listen=free_port(), upstreams=["127.0.0.1:8001", "127.0.0.1:8002"])
    result = subprocess.run(nginx_command(tmp_path, config, "-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@needs_nginx
def test_nginx_refuses_a_broken_config(tmp_path):
    """The check above can fail: a config nginx cannot load is reported."""
    config = local_config(tmp_path, listen=free_port(), upstreams=["127.0.0.1:8001", "127.0.0.1:8002"])
    config.write_text(config.read_text().replace("least_conn;", "least_conn"))
    result = subprocess.run(nginx_command(tmp_path, config, "-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "test failed" in result.stderr


@pytest.fixture
def behind_nginx(azure_simulator, tmp_path_factory):
    """Lapis behind nginx as compose.yaml runs it: two processes on PostgreSQL + Redis (one,
    listed twice, on the SQLite profile, whose channel layer is per process), each with its
    own metrics listener; yields (proxy URL, servers)."""
    work = tmp_path_factory.mktemp("compose")
    config = work / "models.yaml"
    config.write_text(azure_simulator.config_yaml(titleConvo=False, summarize=False))
    env = {"CONFIG_PATH": str(config), "LAPIS_SIM_KEY": azure_simulator.api_key,
           "SECRET_KEY": "compose-" + uuid.uuid4().hex, "METRICS_TOKEN": TOKEN,
           "TRUSTED_PROXY_COUNT": "1"}
    servers = []
    process = None
    try:
        first = LiveServer(tmp_path_factory.mktemp("process-a"), extra_env={**env, "METRICS_ADDRESS": f"127.0.0.1:{free_port()}"})
        servers.append(first)
        first.start()
        first.create_user("carol", TEST_PASSWORD)
        if SEVERAL:
            second = LiveServer(tmp_path_factory.mktemp("process-b"), database_url=first.database_url,
                                extra_env={**env, "METRICS_ADDRESS": f"127.0.0.1:{free_port()}"})
            servers.append(second)
            second.start(migrate=False)
        listen = free_port()
        upstreams = [s.url.removeprefix("http://") for s in servers]
        nginx_dir = work / "nginx"
        nginx_dir.mkdir()
        conf = local_config(nginx_dir, listen=listen, upstreams=(upstreams * 2)[:2])
        process = subprocess.Popen(
            nginx_command(nginx_dir, conf, "-g", "daemon off;"),
            stdout=subprocess.DEVNULL, stderr=open(nginx_dir / "error.log", "w"),
        )
        url = f"http://127.0.0.1:{listen}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2)
                break
            except OSError:
                assert process.poll() is None, (nginx_dir / "error.log").read_text()
                time.sleep(0.1)
        yield url, servers
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        for server in reversed(servers):  # the first drops the shared database
            server.stop()


class Proxy:
    def __init__(self, url):
        self.url = url


async def scrape(server):
    address = server.env["METRICS_ADDRESS"]
    async with aiohttp.ClientSession() as session, session.get(f"http://{address}/metrics") as response:
        assert response.status == 200
        return samples(await response.text())


@needs_nginx
async def test_the_compose_layout_runs_behind_nginx(behind_nginx):
    url, servers = behind_nginx
    proxy = Proxy(url)
    carol = await Browserless.sign_in(proxy, "carol")  # the login form through nginx
    try:
        async with carol.session.get(url + "/healthz") as response:
            assert response.status == 200 and (await response.json())["status"] == "ok"
        # Bodies over the cap are refused by nginx before Lapis reads them; the upload's cap is
        # higher, as Lapis's own.
        async with carol.session.post(url + "/login/", data=b"x" * 100_000) as response:
            assert response.status == 413 and "nginx" in response.headers.get("Server", "")
        async with carol.session.post(url + "/media/uploads/", data=b"x" * 1_000_000) as response:
            assert response.status != 413  # Lapis's answer (no CSRF token), not nginx's cap
        # The figures are never behind the public address, even with the token.
        async with carol.session.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 404

        # Two tabs: websockets through nginx, balanced over the processes (least_conn).
        first, second = await carol.socket(proxy), await carol.socket(proxy)
        before = [await scrape(server) for server in servers]
        await first.send({"type": "send", "client_id": "c1", "model": "gpt-4o",
                          "text": "Through the proxy [sim:words 30] [sim:delay chunk=5]"})
        answer = await first.created_answer()
        assert (await first.done(answer["id"]))["status"] == "complete"
        await second.until(lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant")
        after = [await scrape(server) for server in servers]
        sockets = [total(figures, "lapis_sockets_open") for figures in after]
        assert sum(sockets) == 2 and (len(servers) == 1 or sockets == [1, 1])
        started = sum(total(a, "lapis_answers_started_total", model="gpt-4o") for a in after) - sum(
            total(b, "lapis_answers_started_total", model="gpt-4o") for b in before)
        assert started == 1
        await first.close()
        await second.close()
    finally:
        await carol.close()
