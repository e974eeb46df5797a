"""Arrays of saved models as serving maps them: in place from ``arrays.npz``, and derived
copies kept as ``.npy`` files every worker process maps.

Memory-mapped pages nobody writes are shared between processes, so N workers serving one
model hold its arrays once.
"""

from __future__ import annotations

import logging
import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def mmap_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, memory-mapped in place when stored uncompressed
    (``np.savez``), else read normally. Mappings are copy-on-write: libraries that ask for
    writable buffers get them, and pages nobody writes stay shared between processes."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)
            start = (
                info.header_offset
                + 30
                + int.from_bytes(local[26:28], "little")
                + int.from_bytes(local[28:30], "little")
            )
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh, max_header_size=1 << 20)
            if dtype.hasobject:
                raise ValueError(f"{path.name}:{name}: object arrays are not loaded")
            if int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype)
                continue
            out[name] = np.memmap(path, dtype=dtype, mode="c", offset=fh.tell(), shape=shape,
                                  order="F" if fortran else "C")
    return out


def shared_array(folder: Path | None, name: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """An array derived from a model, memory-mapped from ``folder/<name>.npy``: the first
    process to need it builds and writes it, the others (and later starts) map the same file,
    so its pages are counted once however many workers serve. Without a folder, or when it
    cannot be written, the array is built in memory."""
    if folder is None:
        return np.ascontiguousarray(build())
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:  # a damaged file: rebuilt below
        log.warning("%s unreadable (%s); building it again", path, exc)
        path.unlink(missing_ok=True)
    arr = np.ascontiguousarray(build())
    tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.npy"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces: every process maps the first one written
        except FileExistsError:
            pass
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as exc:
        log.warning("cannot keep %s (%s); this process keeps its own copy", path, exc)
        return arr
    finally:
        tmp.unlink(missing_ok=True)
