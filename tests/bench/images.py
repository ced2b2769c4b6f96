"""Image-decoding benchmark: peak memory of checking and re-encoding an upload, per kind of picture.

Run:  .venv/bin/python -m tests.bench.images
      .venv/bin/python -m tests.bench.images --root /work/main   # another checkout, for comparison

Each case runs in a fresh subprocess (Django set up from ``--root``): the picture's bytes are
read, the process's peak RSS is reset (/proc/self/clear_refs, Linux), then what an upload does
to the pixels runs (``images.decode``, ``images.encode``, the thumbnail), and the peak's growth
over the resting RSS is printed, with the size that would be stored. "x3 at once" runs three in
threads of one process. Prints figures; asserts nothing.
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent.parent

CHILD = r"""
import os, sys, threading, django
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()
from apps.media import images

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
copies = int(sys.argv[2])
sizes = []

def work():
    try:
        image = images.decode(data, name="bench")
    except images.ImageRejected as exc:
        sizes.append("refused: " + exc.message)
        return
    images.encode(image)
    images._thumbnail(image)
    sizes.append("%dx%d" % image.size)

open("/proc/self/clear_refs", "w").write("5")
resting = rss("VmRSS")
threads = [threading.Thread(target=work) for _ in range(copies)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print((rss("VmHWM") - resting) / 1024, sizes[0])
"""


def _png(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _jpeg(image):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _cases():
    solid = Image.new("RGB", (6000, 6000), (40, 90, 160))
    yield "PNG 6000x6000 RGB", _png(solid, compress_level=9), 1
    yield "PNG 6000x6000 RGB, x3 at once", _png(solid, compress_level=9), 3
    yield "PNG 6300x6300 RGB", _png(Image.new("RGB", (6300, 6300), (40, 90, 160)), compress_level=9), 1
    yield "PNG 6000x6000 palette", _png(solid.convert("P"), compress_level=9), 1
    yield "JPEG 6000x6000", _jpeg(solid), 1
    yield "PNG 1600x1200 RGB (ordinary)", _png(Image.new("RGB", (1600, 1200), (200, 10, 10))), 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the Lapis checkout to measure")
    args = parser.parse_args(argv)
    print(f"checkout: {args.root}")
    print(f"{'case':32} {'file':>8} {'peak RSS growth':>16}  stored as")
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "DATA_DIR": scratch, "SECRET_KEY": "bench", "LAPIS_TIKTOKEN_DOWNLOAD": "0"}
        for label, data, copies in _cases():
            path = Path(scratch) / "picture"
            path.write_bytes(data)
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), str(copies)],
                cwd=args.root, env=env, capture_output=True, text=True, timeout=300,
            )
            if result.returncode:
                print(f"{label:32} failed: {result.stderr.strip().splitlines()[-1]}")
                continue
            growth, stored = result.stdout.strip().splitlines()[-1].split(" ", 1)
            print(f"{label:32} {len(data) // 1024:>5} KB {float(growth):>13.1f} MB  {stored}")


if __name__ == "__main__":
    main()
