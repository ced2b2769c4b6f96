"""Signals of apps.azure, for metrics and logs to connect to.

``upstream_failover``: an answer for a pool moved from one member to the next before any text
(a 429, a 5xx, an unreachable or silent member). Sent with ``sender=ModelSpec`` and the keyword
arguments ``model`` (the pool's key, as users picked it), ``from_group`` and ``to_group`` (the
config groups of the two members) and ``reason`` (``rate_limited``, ``server_error``,
``unreachable`` or ``stalled``). Receivers run on the answer's event loop, in the middle of
it: they must be quick and do no I/O (increment a counter).
"""

from django.dispatch import Signal

upstream_failover = Signal()


def count_failover(sender, *, model, from_group, to_group, **kwargs):
    """``lapis_upstream_failovers_total`` (apps.observability): an in-memory increment."""
    from apps.observability.metrics import record_failover

    record_failover(model=model, from_group=from_group, to_group=to_group)
