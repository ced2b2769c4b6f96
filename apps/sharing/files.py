"""Copying stored images (the file and its derived variants) to a new relative path."""

import os
import secrets
import shutil
from pathlib import Path

from django.conf import settings

from apps.media.images import glob_escape


def new_relative(folder, extension):
    return f"{folder}/{secrets.token_urlsafe(18)}.{extension}"


def copy_image_files(source_relative, target_relative):
    """Copy ``source_relative`` and its ``<stem>.<variant><suffix>`` files to ``target_relative``.

    Returns the absolute paths written (for cleanup if the caller's transaction fails). A hard
    link is used where the filesystem allows: the bytes never change, and deleting one name
    leaves the other.
    """
    root = Path(settings.MEDIA_ROOT)
    source, target = root / source_relative, root / target_relative
    target.parent.mkdir(parents=True, exist_ok=True)
    written = []
    variants = source.parent.glob(f"{glob_escape(source.stem)}.*{source.suffix}")
    try:
        for candidate in (source, *variants):
            suffix = candidate.name[len(source.stem):]  # ".png" or ".thumb.png"
            destination = target.with_name(target.stem + suffix)
            try:
                os.link(candidate, destination)
            except OSError:
                shutil.copyfile(candidate, destination)
            written.append(destination)
    except BaseException:
        remove(written)
        raise
    return written


def remove(paths):
    for path in paths:
        Path(path).unlink(missing_ok=True)
