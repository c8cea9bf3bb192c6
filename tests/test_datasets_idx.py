"""The IDX reader and writer on small files written here, byte by byte."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from customkeras.datasets import DatasetError, read_idx, write_idx


def idx_content(array, type_code):
    """The IDX encoding of `array`, built independently of the library (big-endian)."""
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big_endian.tobytes()


def write_bytes(path, content, compress=True):
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


IMAGES = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


@pytest.mark.parametrize(
    "array, type_code",
    [
        (IMAGES, 0x08),
        (np.array([-128, -1, 0, 127], dtype=np.int8), 0x09),
        (np.array([[-300, 2], [7, 32000]], dtype=np.int16), 0x0B),
        (np.array([1, -2, 2**31 - 1], dtype=np.int32), 0x0C),
        (np.array([[0.5, -1.25, 3e38]], dtype=np.float32), 0x0D),
        (np.array([np.pi, -np.e], dtype=np.float64), 0x0E),
    ],
)
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_decodes_every_type_in_native_byte_order(tmp_path, array, type_code, compress):
    name = "data-idx.gz" if compress else "data-idx"
    path = write_bytes(tmp_path / name, idx_content(array, type_code), compress)
    result = read_idx(path)
    assert result.dtype == array.dtype and result.dtype.isnative
    assert result.shape == array.shape
    np.testing.assert_array_equal(result, array)


def test_read_idx_returns_aligned_writeable_contiguous_array(tmp_path):
    path = write_bytes(tmp_path / "images-idx3-ubyte.gz", idx_content(IMAGES, 0x08))
    result = read_idx(path)
    assert result.ctypes.data % 64 == 0
    assert result.flags.c_contiguous and result.flags.writeable


def test_checksum_of_decompressed_content_is_verified(tmp_path):
    content = idx_content(IMAGES, 0x08)
    path = write_bytes(tmp_path / "images-idx3-ubyte.gz", content)
    right = hashlib.sha256(content).hexdigest()
    np.testing.assert_array_equal(read_idx(path, sha256=right), IMAGES)
    np.testing.assert_array_equal(read_idx(path, sha256=right.upper()), IMAGES)
    wrong = hashlib.sha256(content + b"x").hexdigest()
    with pytest.raises(DatasetError) as caught:
        read_idx(path, sha256=wrong)
    message = str(caught.value)
    assert str(path) in message and wrong in message and right in message
    assert "SHA-256" in message and "replace it" in message


def test_checksum_ignores_compression_differences(tmp_path):
    content = idx_content(IMAGES, 0x08)
    fast = tmp_path / "fast-idx3-ubyte.gz"
    fast.write_bytes(gzip.compress(content, compresslevel=1))
    best = write_bytes(tmp_path / "best-idx3-ubyte.gz", content)
    assert fast.read_bytes() != best.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    np.testing.assert_array_equal(read_idx(fast, digest), read_idx(best, digest))


@pytest.mark.parametrize(
    "magic",
    [b"\x01\x00\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00", b"\x1f\x8b\x08\x00"],
    ids=["nonzero-lead", "unknown-type", "zero-dims", "gzip-header"],
)
def test_wrong_magic_number(tmp_path, magic):
    content = idx_content(IMAGES, 0x08)
    path = write_bytes(tmp_path / "images-idx3-ubyte.gz", magic + content[4:])
    with pytest.raises(DatasetError, match="bad magic number") as caught:
        read_idx(path)
    assert str(path) in str(caught.value) and magic.hex(" ") in str(caught.value)


def test_truncated_data(tmp_path):
    content = idx_content(IMAGES, 0x08)
    path = write_bytes(tmp_path / "images-idx3-ubyte.gz", content[:-7])
    with pytest.raises(DatasetError, match="truncated data") as caught:
        read_idx(path)
    assert "expected 60 bytes" in str(caught.value) and "found 53 bytes" in str(caught.value)


def test_truncated_header(tmp_path):
    content = idx_content(IMAGES, 0x08)
    path = write_bytes(tmp_path / "images-idx3-ubyte.gz", content[:9])
    with pytest.raises(DatasetError, match="ends inside the header"):
        read_idx(path)


def test_more_data_than_the_header_declares(tmp_path):
    content = idx_content(IMAGES, 0x08)
    path = write_bytes(tmp_path / "images-idx3-ubyte.gz", content + b"\x00" * 20)
    with pytest.raises(DatasetError, match="more data than the header declares"):
        read_idx(path)


def test_count_larger_than_the_file_can_hold_fails_before_allocating(tmp_path):
    content = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2**31, 28, 28) + b"\x00" * 100
    path = write_bytes(tmp_path / "images-idx3-ubyte.gz", content)
    with pytest.raises(DatasetError, match="larger than the file can hold"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    compressed = gzip.compress(idx_content(np.arange(5000, dtype=np.int32), 0x0C))
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DatasetError, match="cannot read it as gzip-compressed IDX") as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_corrupted_gzip_payload(tmp_path):
    compressed = bytearray(gzip.compress(idx_content(np.arange(5000, dtype=np.int32), 0x0C)))
    compressed[len(compressed) // 2] ^= 0xFF
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(DatasetError, match="cannot read it as gzip-compressed IDX"):
        read_idx(path)


def test_not_gzip_at_all(tmp_path):
    path = write_bytes(tmp_path / "labels-idx1-ubyte.gz", idx_content(IMAGES, 0x08), compress=False)
    with pytest.raises(DatasetError, match="cannot read it as gzip-compressed IDX"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="absent-idx1-ubyte.gz"):
        read_idx(tmp_path / "absent-idx1-ubyte.gz")


@pytest.mark.parametrize("name", ["round-idx.gz", "round-idx"])
def test_write_idx_matches_the_format_and_round_trips(tmp_path, name):
    array = np.array([[1, -2, 3], [400, 5, -60000]], dtype=np.int32)
    path = tmp_path / name
    write_idx(path, array)
    raw = path.read_bytes()
    content = gzip.decompress(raw) if name.endswith(".gz") else raw
    assert content == idx_content(array, 0x0C)
    np.testing.assert_array_equal(read_idx(path), array)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_write_idx_never_overwrites_unless_asked(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    write_idx(path, np.arange(3, dtype=np.uint8))
    with pytest.raises(FileExistsError):
        write_idx(path, np.arange(5, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.arange(3))
    write_idx(path, np.arange(5, dtype=np.uint8), overwrite=True)
    np.testing.assert_array_equal(read_idx(path), np.arange(5))


@pytest.mark.parametrize("array", [np.arange(3, dtype=np.int64), np.float32(1.0)])
def test_write_idx_rejects_what_idx_cannot_hold(tmp_path, array):
    with pytest.raises(ValueError, match="received"):
        write_idx(tmp_path / "x-idx.gz", array)
    assert not list(tmp_path.iterdir())
