"""Atomic file writes: every file the toolkit writes appears complete or not at all.

A crash, a full disk or Ctrl-C mid-write leaves the previous file (or none) under the final name,
never a truncated one, which is what lets batch tools resume by looking at what exists.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it to ``path``.

    Creates missing parent folders. The temporary file is removed if ``write`` raises. The file
    gets the permissions an ordinary ``open(path, "w")`` would give it (0666 minus the process
    umask): :func:`tempfile.mkstemp` creates it private (0600), which would otherwise survive the
    rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc), since
    setting it to probe it is not thread-safe."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks): how weights name the files they came from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(*parts) -> str:
    """sha256 over ``parts`` in order: tensors or arrays (their contiguous bytes; floating point
    as float32, so a float64 copy of the same weights hashes alike) and strings (UTF-8). What a
    model fingerprint is built from: which geometry weights or a data set were made for."""
    import numpy as np

    h = hashlib.sha256()
    for x in parts:
        if isinstance(x, str):
            h.update(x.encode())
            continue
        a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
        if np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32)
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
