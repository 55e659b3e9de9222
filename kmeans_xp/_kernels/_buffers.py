"""Work blocks reused across chunks and iterations (shared by the vendor kernel sets)."""

from __future__ import annotations

from typing import Any


def buffer(buffers: dict | None, name: str, shape: tuple, like: Any, empty: Any) -> Any:
    """A reusable (rows, cols) block from ``buffers`` (None: a fresh one), sliced to ``shape``.

    Reusing the block across chunks and iterations avoids an allocation (and its page
    faults) per chunk; on torch CPU, fresh blocks also made glibc grow the resident set by
    about n x k elements in the first pass.
    """
    if buffers is None:
        return empty(shape)
    key = (name, shape[1], str(like.dtype), str(getattr(like, "device", "cpu")))
    buf = buffers.get(key)
    if buf is None or buf.shape[0] < shape[0]:
        buf = buffers[key] = empty(shape)
    return buf[: shape[0]]
