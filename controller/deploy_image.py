"""Image references for the deploy renderers: a tag (or a digest) is required, so that
every pod or service instance runs the same build and a redeploy is a deliberate change."""

from __future__ import annotations

import re

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_SPCS_PATH = re.compile(r"^(?:[^/\s]+)?/[^/\s]+/[^/\s]+/[^/\s]+/[^/\s]+$")


class ImageError(ValueError):
    """An image reference the renderers refuse, with the reason."""


def check_image(image: str) -> str:
    """``image`` when it names a tag (``name:1.2``) or a digest (``name@sha256:...``)."""
    if not image or any(c.isspace() for c in image):
        raise ImageError(f"--image {image!r}: not an image reference")
    name, at, digest = image.partition("@")
    if at:
        if not _DIGEST.match(digest):
            raise ImageError(f"--image {image!r}: {digest!r} is not a digest")
        return image
    last = name.rsplit("/", 1)[-1]  # a registry's host:port is not a tag
    repo, colon, tag = last.partition(":")
    if not colon or not repo:
        raise ImageError(
            f"--image {image!r} has no tag: name a build, e.g. {image}:0.1.0 "
            "(an untagged image is whatever was pushed last)"
        )
    if not _TAG.match(tag):
        raise ImageError(f"--image {image!r}: {tag!r} is not a valid tag")
    return image


def check_spcs_image(image: str) -> str:
    """``image`` when it is a tagged image in an account's image repository:
    ``/db/schema/repo/name:tag`` (optionally after the registry's host name)."""
    check_image(image)
    if "@" in image or not _SPCS_PATH.match(image):
        raise ImageError(
            f"--image {image!r}: SPCS runs images from an image repository of the account, "
            "named /<db>/<schema>/<repository>/<image>:<tag> (see deploy/README.md)"
        )
    return image
