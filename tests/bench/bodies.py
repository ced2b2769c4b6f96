"""Request-body benchmark: peak memory of the server process for 100 MB bodies it should refuse.

Run:  .venv/bin/python -m tests.bench.bodies                  # Lapis's server (project.server)
      .venv/bin/python -m tests.bench.bodies --server daphne  # plain Daphne, for comparison

Starts a Lapis server (tests/live.py) and, one at a time, sends anonymous 100 MB bodies to
``/healthz`` over a raw socket: a multipart body with its length declared, the same chunked, and a
"lying" one declaring 60 KB (under the limit) and sending 100 MB. Before each it resets the
process's peak RSS (/proc/PID/clear_refs, Linux) and afterwards prints the peak's growth over the
resting RSS, what the client managed to send, the status line and how long the attempt took.
Everything stays on 127.0.0.1; each attempt gives up after 120 s. Prints figures; asserts nothing.
"""

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

from tests.live import SERVER, LiveServer

SIZE = 100 * 1024 * 1024
PIECE = 256 * 1024
BOUNDARY = b"lapisbench"


def _rss_kb(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _multipart_pieces():
    """A 100 MB multipart body (one file field) in PIECE-sized parts, header and trailer included."""
    head = (
        b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    tail = b"\r\n--" + BOUNDARY + b"--\r\n"
    filler = b"x" * PIECE
    yield head
    left = SIZE - len(head) - len(tail)
    while left > 0:
        piece = filler[: min(PIECE, left)]
        left -= len(piece)
        yield piece
    yield tail


def _attempts():
    content_type = b"Content-Type: multipart/form-data; boundary=" + BOUNDARY
    start = b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + content_type + b"\r\n"
    yield "declared 100 MB", start + b"Content-Length: %d\r\n\r\n" % SIZE, _multipart_pieces()
    chunked = (b"%x\r\n%s\r\n" % (len(piece), piece) for piece in _multipart_pieces())
    yield "chunked 100 MB", start + b"Transfer-Encoding: chunked\r\n\r\n", (*chunked, b"0\r\n\r\n")
    yield "declares 60 KB, sends 100 MB", start + b"Content-Length: 61440\r\n\r\n", _multipart_pieces()


def _attempt(port, head, pieces):
    """(bytes sent, status line) for one request; stops sending once the server answers or closes."""
    sent, status = 0, b"(no answer)"
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head)
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:
                break
            sent += len(piece)
        sock.settimeout(120)
        try:
            answer = sock.recv(4096)
            status = answer.split(b"\r\n", 1)[0] or b"(closed)"
        except OSError as exc:
            status = f"({type(exc).__name__})".encode()
    return sent, status.decode("latin-1")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("lapis", "daphne"), default="lapis")
    args = parser.parse_args(argv)
    command = SERVER if args.server == "lapis" else [str(Path(sys.executable).parent / "daphne")]
    with tempfile.TemporaryDirectory() as data, LiveServer(data, command=command) as server:
        pid = server.process.pid
        print(f"server: {' '.join(command[-2:])}  (pid {pid})")
        print(f"{'attempt':32} {'peak RSS growth':>16} {'client sent':>12} {'seconds':>8}  answer")
        for label, head, pieces in _attempts():
            time.sleep(1)  # let the previous attempt's memory settle
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            resting = _rss_kb(pid, "VmRSS")
            began = time.monotonic()
            sent, status = _attempt(server.port, head, pieces)
            took = time.monotonic() - began
            time.sleep(2)  # the application may still be parsing what it was given
            growth = _rss_kb(pid, "VmHWM") - resting
            print(f"{label:32} {growth / 1024:>13.1f} MB {sent / 2**20:>9.1f} MB {took:>8.1f}  {status}")


if __name__ == "__main__":
    main()
