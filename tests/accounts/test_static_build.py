"""The Docker image's static files: collectstatic with hashed names, then the chat page runs on them."""

import subprocess
import sys

import pytest

from tests.conftest import TEST_PASSWORD, login
from tests.live import ROOT

pytestmark = pytest.mark.browser


def test_collected_static_files_serve_the_chat_page(tmp_path, live_server_factory, browser_page):
    static_root = tmp_path / "static"
    env = {"LAPIS_MANIFEST_STATIC": "1", "STATIC_ROOT": str(static_root)}
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env={**_base_env(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr[-3000:]
    assert list((static_root / "js").glob("chat.*.js")), "no hashed chat.js was collected"

    server = live_server_factory(extra_env=env)
    server.create_user("dora", TEST_PASSWORD)
    login(browser_page, server.url, "dora")
    browser_page.wait_for_selector("[data-chat][data-ready='1']")
    scripts = browser_page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
    assert any(".js" in src and "chat." in src and src.count(".") >= 3 for src in scripts), scripts
    assert browser_page.console_errors == []


def _base_env(tmp_path):
    import os

    return {**os.environ, "SECRET_KEY": "collectstatic-only", "DATA_DIR": str(tmp_path / "data")}
