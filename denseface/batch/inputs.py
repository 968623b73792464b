"""The inputs of a batch: files, directories (recursive), globs and ``@LIST`` files, as path/URL strings.

* a file is taken as given, whatever its extension (a bad one becomes an error row);
* a directory is walked recursively, in sorted order, for files with the extension of a format the
  library decodes (:data:`IMAGE_EXTENSIONS`: every one ``denseface analyze`` takes, case-insensitive);
  hidden files and directories are skipped, and the other files are listed in ``skipped``;
* a string with ``*``, ``?`` or ``[`` that is not an existing file is a glob (``**`` recursive); what it
  matches is expanded like the above;
* ``@LIST`` is a text file with one path, directory, glob or http(s) URL a line (blank lines and lines
  starting with ``#`` are skipped; relative paths are relative to the current directory, as on the
  command line);
* a URL (``scheme://…``) is kept as it is and fetched later by the SSRF-safe fetcher.

Each input string appears once (the first time it is met). Something that does not exist is still an
input: its row says so (``FailedOperation.ImageDecodeFailed``, cannot read the file).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator

from denseface.batch.rows import is_url
from denseface.engine.decode import image_extensions

IMAGE_EXTENSIONS = image_extensions()
_GLOB_CHARS = frozenset("*?[")


class InputError(ValueError):
    """An ``@LIST`` file that cannot be read."""


def iter_inputs(specs: Iterable[str], skipped: list[str] | None = None) -> Iterator[str]:
    """Every input string of ``specs``, in order, duplicates included. Files met in a directory that
    are not images by their extension are appended to ``skipped``."""
    sink = skipped if skipped is not None else []
    for spec in specs:
        if spec.startswith("@"):
            yield from _iter_list(spec[1:], sink)
        else:
            yield from _expand(spec, sink)


def collect_inputs(specs: Iterable[str], skipped: list[str] | None = None) -> list[str]:
    """The inputs of ``specs``, each once, in the order first met (see :func:`iter_inputs`)."""
    return list(dict.fromkeys(iter_inputs(specs, skipped)))


def _iter_list(path: str, skipped: list[str]) -> Iterator[str]:
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 (closed below; a generator)
    except OSError as exc:
        raise InputError(f"cannot read the list {path}: {exc.strerror or exc}") from exc
    with handle:
        for raw in handle:
            line = raw.strip()
            if line and not line.startswith("#"):
                yield from _expand(line, skipped)


def _expand(spec: str, skipped: list[str]) -> Iterator[str]:
    if is_url(spec):
        yield spec
    elif os.path.isdir(spec):
        yield from _walk(spec, skipped)
    elif not os.path.exists(spec) and _GLOB_CHARS.intersection(spec):
        for match in sorted(glob.iglob(spec, recursive=True)):
            if os.path.isdir(match):
                yield from _walk(match, skipped)
            elif os.path.isfile(match):
                yield match
    else:
        yield spec


def _walk(directory: str, skipped: list[str]) -> Iterator[str]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield os.path.join(root, name)
            else:
                skipped.append(os.path.join(root, name))
