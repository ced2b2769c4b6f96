"""ASGI entry point for server processes: the application, then the start-up hooks once."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()

from project.application import application  # noqa: E402
from project.lifecycle import install_shutdown_trigger, run_startup_hooks  # noqa: E402

__all__ = ["application"]
run_startup_hooks()
install_shutdown_trigger()
