import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.settings import env_bool, parse_database_url
from tests.live import ROOT


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgres://lapis:s3cret@db.example:6543/chat",
            {"NAME": "chat", "USER": "lapis", "PASSWORD": "s3cret", "HOST": "db.example", "PORT": "6543"},
        ),
        ("postgresql://postgres@127.0.0.1/test", {"NAME": "test", "HOST": "127.0.0.1", "PORT": ""}),
        ("postgres://u:p%40ss@h/db?sslmode=require", {"PASSWORD": "p@ss", "OPTIONS": {"connect_timeout": 5, "sslmode": "require"}}),
    ],
)
def test_database_url_parses_postgres(url, expected):
    parsed = parse_database_url(url)
    assert parsed["ENGINE"] == "django.db.backends.postgresql"
    for key, value in expected.items():
        assert parsed[key] == value


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:hunter2@h/db", "scheme 'mysql' is not supported"),
        ("postgres://u:hunter2@h", "no database name"),
        ("postgres://u:hunter2@h:notaport/db", "not a valid URL"),
        ("nonsense", "scheme '(none)' is not supported"),
    ],
)
def test_bad_database_url_gives_clear_error_without_password(url, message):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        parse_database_url(url)
    assert message in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)


def test_bad_database_url_stops_manage_py_with_the_message():
    env = {**os.environ, "DATABASE_URL": "mysql://u:hunter2@h/db"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DATABASE_URL scheme 'mysql' is not supported" in result.stderr
    assert "hunter2" not in result.stderr


def test_env_bool_refuses_nonsense(monkeypatch):
    monkeypatch.setenv("LAPIS_X", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="LAPIS_X must be a boolean"):
        env_bool("LAPIS_X")
    monkeypatch.setenv("LAPIS_X", "on")
    assert env_bool("LAPIS_X") is True


def test_generated_secret_key_is_kept_in_the_data_dir(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"} | {"DATA_DIR": str(tmp_path)}
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "manage.py", "shell", "-v0", "-c", code], cwd=ROOT, env=env,
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    first, second = run(), run()
    assert first == second and len(first) > 40
    assert (tmp_path / "secret_key").read_text().strip() == first
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_check_deploy_is_clean_in_production_mode(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DEBUG",)},
        "LAPIS_HTTPS": "1",
        "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
        "ALLOWED_HOSTS": "chat.example.org",
        "DATA_DIR": str(tmp_path),
        "LAPIS_SECRETS_KEYS": "sw3lqk7C8zPj0hV0o8E9fYq9m3Jr2bqX2tKJ3x1y4uE=",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # Without its own key the stored model-group keys hang on SECRET_KEY: said, as a warning.
    del env["LAPIS_SECRETS_KEYS"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 1 and "lapis.W005" in result.stderr + result.stdout
