"""Signals other parts of Lapis (titles, summaries) hook into."""

from django.dispatch import Signal

# Sent (with ``asend``) once an answer's final state is written.
# Arguments: ``message_id`` (UUID), ``status`` (a Message.Status value).
answer_finished = Signal()
