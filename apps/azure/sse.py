"""An incremental Server-Sent Events decoder for Azure's streamed answers (no I/O, no openai).

Why our own: the SDK decodes every chunk into a tree of pydantic objects, which costs more per
chunk than the rest of Lapis's relay together; the chat stream needs only ``json.loads`` of each
data event. The decoder follows the WHATWG event-stream rules that matter on the wire:

- lines end with ``\\n``, ``\\r\\n`` or ``\\r`` (a ``\\r`` at the end of one read may be followed
  by the ``\\n`` of the next: that is one line end, not two);
- ``data:`` lines of one event are joined with ``\\n``; a blank line dispatches the event;
- ``event:`` names the event's type (``None`` when absent); ``id:``, ``retry:`` and comment
  lines (``:`` first) are ignored;
- a bare ``[DONE]`` line (some gateways drop the ``data: ``) is a ``[DONE]`` data event.

``feed(bytes)`` returns the events completed by that read as ``(type, data bytes)`` pairs.
``finish()`` returns what is left at the end of the body: an event whose blank line never came
(still usable when it is whole) and ``partial`` — whether a line was cut off without its end.
"""

DONE = b"[DONE]"
_CR = 13  # b"\r"[0]
_COLON = 58  # b":"[0]


class SSEDecoder:
    __slots__ = ("_rest", "_data", "_type", "_skip_lf")

    def __init__(self):
        self._rest = b""  # an unterminated line from the last read
        self._data = []  # data lines of the event being read
        self._type = None
        self._skip_lf = False  # the last read ended in "\r": a leading "\n" belongs to it

    def feed(self, chunk):
        """The events completed by ``chunk`` (bytes), in order: a list of (type, data)."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if self._rest:
            chunk = self._rest + chunk
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:
            self._rest = chunk
            return []
        self._rest = chunk[end + 1 :]
        if chunk[end] == _CR and not self._rest:
            self._skip_lf = True
        return self._lines(chunk[: end + 1].splitlines())

    def finish(self):
        """(events, partial) at the end of the body.

        ``events``: the event that was still open (its data lines were whole but no blank line
        followed), as one (type, data) pair or none. ``partial``: a line was cut off mid-way;
        its text is given as a last data event so the caller can see whether it still parses.
        """
        rest, self._rest = self._rest, b""
        partial = bool(rest.strip())
        events = self._lines([rest, b""]) if partial else self._lines([b""])
        return events, partial

    def _lines(self, lines):
        events = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append((self._type, data[0] if len(data) == 1 else b"\n".join(data)))
                    data.clear()
                self._type = None
                continue
            if line[0] == _COLON:
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)
            elif line.startswith(b"event:"):
                value = line[6:]
                self._type = (value[1:] if value[:1] == b" " else value).decode("utf-8", "replace")
            elif line.strip() == DONE:
                events.append((None, DONE))
            # id:, retry: and unknown fields carry nothing for Lapis
        return events
