"""Hostile file contents for the tests: .npy headers declaring any shape, cut .npz
archives, PNGs declaring any size, CSV text and plain random bytes (hypothesis
strategies), and the byte builders they use."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from hypothesis import strategies as st
from numpy.lib import format as npy_format


def npy_bytes(shape: tuple[int, ...], descr: str = "<f8", values: bytes = b"") -> bytes:
    """A .npy header declaring ``shape`` and ``descr``, then ``values``."""
    out = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    npy_format.write_array_header_1_0(out, header)
    return out.getvalue() + values


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A PNG declaring the image's size, with the start of its pixels (a few zeros)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    pixels = zlib.compress(bytes(64))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", pixels)


_DESCRS = ["<f8", "<i4", "|u1", "<f4", "|O", "<U3", "|V8", "<c16", "|b1", "S0", "<m8[s]", "zz"]
_dims = st.integers(0, 3) | st.integers(0, 2**40)
_shapes = st.lists(_dims, max_size=5).map(tuple) | st.integers(-5, 5)  # an int: not a shape


@st.composite
def npy_files(draw: st.DrawFn) -> bytes:
    """A .npy header, most often well-formed, declaring any shape, then a few bytes."""
    header = repr({"descr": draw(st.sampled_from(_DESCRS)), "fortran_order": False})
    header = header[:-1] + f", 'shape': {draw(_shapes)!r}}}"
    header = draw(st.sampled_from([header] * 4 + [header[: len(header) // 2], "{}", "[[[["]))
    length = draw(st.sampled_from([len(header)] * 4 + [draw(st.integers(0, 2**16 - 1))]))
    version = draw(st.sampled_from([1, 1, 2, 3]))
    length_bytes = struct.pack("<H" if version == 1 else "<I", length)
    head = npy_format.MAGIC_PREFIX + bytes([version, 0]) + length_bytes
    return head + header.encode() + draw(st.binary(max_size=256))


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    """A zip of .npy files or bytes, under the names load_dataset looks for; maybe cut."""
    out = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    names = draw(st.lists(st.sampled_from(["x", "y", "data", "arr_0", "q"]), unique=True))
    with zipfile.ZipFile(out, "w", method) as archive:
        for name in names:
            archive.writestr(f"{name}.npy", draw(npy_files() | st.binary(max_size=64)))
    data = out.getvalue()
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


@st.composite
def pngs(draw: st.DrawFn) -> bytes:
    """A PNG declaring any size, with a few bytes of pixels."""
    size = st.integers(0, 64) | st.integers(0, 2**31 - 1)
    modes = st.sampled_from([(8, 0), (8, 2), (8, 6), (1, 0), (16, 0), (8, 3), (3, 7)])
    png = png_header(draw(size), draw(size), *draw(modes))
    return png + draw(st.binary(max_size=64))


_CSV_TEXT = st.text(alphabet='0123456789,.-+eE\n\r" nan', max_size=300).map(str.encode)
FILES = st.one_of(
    st.tuples(st.sampled_from([".npy", ".npz", ".csv"]), st.binary(max_size=512)),
    st.tuples(st.just(".npy"), npy_files()),
    st.tuples(st.just(".npz"), npz_files()),
    st.tuples(st.just(".csv"), _CSV_TEXT | st.binary(max_size=300)),
    st.tuples(st.sampled_from(["/a.png", "/b.jpg"]), pngs() | st.binary(max_size=300)),
)
