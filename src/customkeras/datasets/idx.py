"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number `00 00 <type> <ndim>`, then `ndim` big-endian uint32
sizes, then the values in row-major order, big-endian. Files whose name ends in `.gz` are
gzip-compressed.
"""

import gzip
import hashlib
import math
import os
import pathlib
import struct
import tempfile
import zlib

import numpy as np

from customkeras.datasets.alignment import aligned_empty
from customkeras.datasets.errors import DatasetError

IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Deflate cannot expand data by more than ~1032:1, so a header promising more than this
# times the compressed size is wrong; checking it first avoids a huge allocation.
_MAX_GZIP_RATIO = 1032

_FIX = (
    "The file is damaged or is not this IDX file: replace it with an intact copy of the "
    "original (delete it so that it is downloaded again, or copy it from a good data "
    "directory)."
)


def _error(path, problem, expected, found):
    return DatasetError(f"{path}: {problem}: expected {expected}, found {found}. {_FIX}")


def _read_exactly(stream, size, path, what):
    data = stream.read(size)
    if len(data) != size:
        raise _error(path, f"file ends inside the header ({what})", f"{size} bytes", f"{len(data)}")
    return data


def _read_into(stream, buffer):
    """Fill `buffer` from `stream` (decompressing straight into it); return bytes read."""
    view = memoryview(buffer).cast("B")
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _parse_magic(magic, path):
    type_code, ndim = magic[2], magic[3]
    if magic[:2] != b"\x00\x00" or type_code not in IDX_DTYPES or ndim == 0:
        codes = "/".join(f"{code:02x}" for code in IDX_DTYPES)
        raise _error(
            path,
            "not an IDX file (bad magic number)",
            f"00 00 <type {codes}> <ndim >= 1>",
            magic.hex(" "),
        )
    return IDX_DTYPES[type_code], ndim


def read_idx(path, sha256=None):
    """Read an IDX file (gzip-compressed if its name ends in `.gz`) into a NumPy array.

    The values are decompressed straight into one 64-byte aligned array (no intermediate
    copy of the file's content), then checked: the magic number, that the data holds
    exactly `prod(sizes)` values, and, when `sha256` is given, the SHA-256 of the whole
    decompressed content (header included). Multi-byte values are returned in native
    byte order. Nothing is returned unless every check passed.

    Args:
        path: Str or path-like, the file.
        sha256: Hex digest the decompressed content must have, or None to skip the
            check. Defaults to None.

    Returns:
        The array, of the shape and type the header declares.

    Raises:
        DatasetError: naming the file, what was expected and what was found.

    Example:

    >>> labels = read_idx("fashion-mnist/t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
    >>> labels.shape, labels.dtype  # doctest: +SKIP
    ((10000,), dtype('uint8'))
    """
    path = pathlib.Path(path)
    compressed = path.suffix == ".gz"
    opener = gzip.open if compressed else open
    try:
        capacity = os.path.getsize(path) * (_MAX_GZIP_RATIO if compressed else 1)
        with opener(path, "rb") as stream:
            magic = _read_exactly(stream, 4, path, "magic number")
            dtype, ndim = _parse_magic(magic, path)
            sizes = _read_exactly(stream, 4 * ndim, path, f"{ndim} dimension sizes")
            shape = struct.unpack(f">{ndim}I", sizes)
            nbytes = math.prod(shape) * dtype.itemsize
            declared = f"{nbytes} bytes of data for shape {shape}"
            if 4 + len(sizes) + nbytes > capacity:
                found = f"a {os.path.getsize(path)}-byte file"
                raise _error(path, "header larger than the file can hold", declared, found)
            data = aligned_empty(nbytes, np.uint8)
            filled = _read_into(stream, data)
            if filled != nbytes:
                raise _error(path, "truncated data", declared, f"{filled} bytes")
            if stream.read(1):
                found = "extra bytes after them"
                raise _error(path, "more data than the header declares", declared, found)
    except (OSError, EOFError, zlib.error) as error:
        kind = "gzip-compressed IDX" if compressed else "IDX"
        raise DatasetError(f"{path}: cannot read it as {kind}: {error}. {_FIX}") from error
    if sha256 is not None:
        digest = hashlib.sha256(magic + sizes)
        digest.update(data)
        if digest.hexdigest() != sha256.lower():
            problem = "SHA-256 of the decompressed content differs"
            raise _error(path, problem, sha256.lower(), digest.hexdigest())
    array = data.view(dtype).reshape(shape)
    if dtype.byteorder == ">":
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def _idx_type_code(dtype):
    for code, idx_dtype in IDX_DTYPES.items():
        if (idx_dtype.kind, idx_dtype.itemsize) == (dtype.kind, dtype.itemsize):
            return code
    supported = ", ".join(str(d.newbyteorder("=")) for d in IDX_DTYPES.values())
    raise ValueError(f"array dtype must be one of {supported}; received dtype={dtype}")


def write_idx(path, array, overwrite=False):
    """Write `array` as an IDX file (gzip-compressed if `path` ends in `.gz`), atomically.

    The file is written under a temporary name in the same directory and renamed into
    place, so a reader never sees half a file.

    Args:
        path: Str or path-like, the file to create.
        array: Array-like of uint8, int8, int16, int32, float32 or float64 values, with
            at least one dimension.
        overwrite: Whether to replace an existing file. Defaults to False (an existing
            file raises `FileExistsError`).

    Example:

    >>> write_idx(tmp_dir / "labels-idx1-ubyte.gz", np.arange(10, dtype="uint8"))  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    array = np.asarray(array)
    if array.ndim == 0:
        raise ValueError(f"array must have at least one dimension; received shape={array.shape}")
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    code = _idx_type_code(array.dtype)
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if path.suffix == ".gz":
        content = gzip.compress(content, mtime=0)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
