"""Start-up work for server processes.

Apps register hooks in ``AppConfig.ready()`` with ``at_startup``; ``project.asgi`` runs them once
when a server process loads the application (not for management commands). Daphne does not speak
the ASGI lifespan protocol, so this is the one place every server process passes through.
"""

import logging

logger = logging.getLogger("lapis.startup")
_hooks = []


def at_startup(hook):
    """Register ``hook()`` (order of registration) to run when a server process starts."""
    _hooks.append(hook)
    return hook


def run_startup_hooks():
    """Run every registered hook; a failing hook raises so a broken start stops the process."""
    for hook in _hooks:
        hook()
