"""Image bytes for tests, made with Pillow or by hand."""

import io
import os
import struct
import zlib

from PIL import ExifTags, Image


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width=50_000, height=50_000):
    """A valid-looking PNG of a few dozen bytes whose header claims ``width``×``height`` RGB."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def two_colour(width, height, left=(255, 0, 0), right=(0, 0, 255), mode="RGB"):
    """Left half ``left``, right half ``right``: orientation can be read back from it."""
    image = Image.new(mode, (width, height), left)
    image.paste(Image.new(mode, (width - width // 2, height), right), (width // 2, 0))
    return image


def png(width=64, height=48, **kwargs):
    return encoded(two_colour(width, height, **kwargs), "PNG")


def noisy_png(width, height):
    """A PNG that does not compress: its byte size is about width × height × 3."""
    return encoded(Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)), "PNG")


def jpeg_with_orientation_and_gps(width=40, height=20, orientation=6):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "CanaryCam"
    exif[ExifTags.Base.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (48.0, 51.0, 29.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (2.0, 17.0, 40.0),
    }
    return encoded(two_colour(width, height), "JPEG", exif=exif.tobytes(), quality=95)


def animated_gif():
    """Two frames: red, then blue."""
    frames = [Image.new("P", (30, 20), 0), Image.new("P", (30, 20), 1)]
    palette = [255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6)
    for frame in frames:
        frame.putpalette(palette)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def fake_exe():
    """A Windows executable's first bytes (an MZ header), to be renamed .png."""
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00" * 64
