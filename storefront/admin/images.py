"""Product pictures uploaded in the admin, and the one route that serves them.

An upload is never stored as sent: Pillow reads it (JPEG, PNG or WebP only, its pixel count
bounded before any pixel is decoded, against decompression bombs), its pixels are copied into a
fresh image (so no EXIF, GPS position, ICC profile or comment survives) and encoded again under
a random name. The route serves only names of that shape, always as an image with
``X-Content-Type-Options: nosniff``: whatever was uploaded, it can never be served as a page.
"""

from __future__ import annotations

import re
import secrets
import warnings
from io import BytesIO
from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory
from PIL import Image, ImageOps, UnidentifiedImageError

# What is accepted: Pillow's format name → the extension saved and the Content-Type served.
FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
CONTENT_TYPES = {ext: kind for ext, kind in FORMATS.values()}
NAME = re.compile(r"[0-9a-f]{32}\.(jpg|png|webp)")
# 40 megapixels is a large camera's photo; anything bigger is refused before it is decoded.
MAX_PIXELS = 40_000_000
# Pictures are kept at most this wide and high: the shop shows them at 600 pixels.
MAX_SIDE = 1600
TOO_MANY_PIXELS = "The picture has too many pixels: 40 megapixels at most."
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own guard, for any other use in the process

media = Blueprint("media", __name__)


class ImageRefused(ValueError):
    """The upload is not a picture the shop accepts; the message says why, for the form."""


def folder() -> Path:
    """Where uploads live: STOREFRONT_UPLOAD_FOLDER, else the instance folder's uploads/."""
    configured = current_app.config["UPLOAD_FOLDER"]
    # Resolved here, once: Flask would read a relative folder from the package when serving.
    return (
        Path(configured) if configured else Path(current_app.instance_path) / "uploads"
    ).resolve()


def save_upload(stream) -> str:
    """Check, clean and store an uploaded picture; its new file name.

    :raise ImageRefused: too big, not an image, not JPEG/PNG/WebP, or too many pixels.
    """
    limit = current_app.config["UPLOAD_MAX_BYTES"]
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ImageRefused(f"The picture is larger than {limit // (1024 * 1024) or 1} MB.")
    if not data:
        raise ImageRefused("The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data)) as picture:  # reads the header only
                if picture.format not in FORMATS:
                    raise ImageRefused("Upload a JPEG, PNG or WebP picture.")
                width, height = picture.size
                if width * height > MAX_PIXELS:
                    raise ImageRefused(TOO_MANY_PIXELS)
                kind = picture.format
                picture.load()
                clean = _cleaned(picture)
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused(TOO_MANY_PIXELS) from None
    except UnidentifiedImageError:
        raise ImageRefused("This file is not a picture the shop can read.") from None
    except (OSError, ValueError, SyntaxError):
        raise ImageRefused("This picture is damaged or cut short.") from None
    ext, _ = FORMATS[kind]
    name = f"{secrets.token_hex(16)}.{ext}"
    target = folder()
    target.mkdir(parents=True, exist_ok=True)
    options = {"JPEG": {"quality": 88, "optimize": True}, "WEBP": {"quality": 88}}.get(kind, {})
    clean.save(target / name, format=kind, **options)
    return name


def _cleaned(picture: Image.Image) -> Image.Image:
    """The picture's pixels alone, upright and bounded in size: a new image without metadata."""
    upright = ImageOps.exif_transpose(picture)
    if upright.mode not in ("RGB", "RGBA", "L"):
        # Palette, CMYK, 16-bit…: to RGB, keeping transparency where there was some.
        clear = "A" in upright.getbands() or "transparency" in upright.info
        upright = upright.convert("RGBA" if clear else "RGB")
    if picture.format == "JPEG" and upright.mode == "RGBA":
        upright = upright.convert("RGB")
    upright.thumbnail((MAX_SIDE, MAX_SIDE))
    return Image.frombytes(upright.mode, upright.size, upright.tobytes())


def delete_upload(name: str) -> None:
    if name and NAME.fullmatch(name):
        (folder() / name).unlink(missing_ok=True)


@media.get("/media/<name>")
def image(name: str):
    """An uploaded product picture, as an image and nothing else.

    :raise 404: not a name the shop gives, or no such picture.
    """
    if not NAME.fullmatch(name):
        abort(404)
    response = send_from_directory(
        folder(), name, mimetype=CONTENT_TYPES[name.rsplit(".", 1)[1]], max_age=86400
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "inline"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
