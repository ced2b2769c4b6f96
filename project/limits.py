"""Input limits shared by the HTTP views and the websocket protocol."""

# Beyond this a page number cannot name a real page, and PostgreSQL's OFFSET would overflow.
MAX_PAGE = 100_000


def unstorable_reason(text):
    """Why ``text`` cannot be stored in the database (SQLite and PostgreSQL), or None.

    PostgreSQL refuses NUL in text, and a lone UTF-16 surrogate (valid JSON: ``"\\ud800"``) has
    no UTF-8 form, so either fails deep in the driver; callers refuse it at the edge instead.
    """
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (\\u{ord(text[exc.start]):04x}) at character {exc.start}"
    return None


def first_unstorable(value, path=""):
    """(path, reason) of the first string in a JSON value that cannot be stored, or None."""
    if isinstance(value, str):
        reason = unstorable_reason(value)
        return (path or "value", reason) if reason else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and (reason := unstorable_reason(key)):
            return (f"{path}.{key!r}" if path else repr(key), f"has a key that {reason}")
        found = first_unstorable(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None
