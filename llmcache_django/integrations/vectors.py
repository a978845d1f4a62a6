"""How a cached embedding is stored: the vector packed (float32 or float64), behind a header
naming its dtype, its length, the model that made it, for which role and when.

No LangChain import: the admin reads stored vectors' headers with this module alone.
"""

from __future__ import annotations

import struct
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

DTYPES = {"float32": "f", "float64": "d"}
ROLES = {"document": b"d", "query": b"q"}
#: Magic, dtype code, dimensions, created (UNIX time), role code, identity length; then the
#: model identity (UTF-8) and the packed vector.
_HEADER = struct.Struct("<3scIdcH")
_MAGIC = b"LE2"
#: The first format (before the admin listed vectors): magic, dtype code, dimensions.
_LEGACY_HEADER = struct.Struct("<3scI")
_LEGACY_MAGIC = b"LE1"
#: The header keeps this much of the model identity, for people (the key has all of it).
MAX_IDENTITY_BYTES = 1024


@dataclass(frozen=True)
class VectorInfo:
    """What the header of a stored vector says (``identity`` and ``role`` empty and ``created``
    ``None`` for a vector stored in the first format)."""

    identity: str
    role: str
    created: float | None
    dimensions: int
    dtype: str


def encode_vector(
    vector: Sequence[float], dtype: str = "float32", *, identity: str = "", role: str = "document"
) -> bytes:
    """``vector`` packed little-endian as ``dtype``, behind its header."""
    code = DTYPES[dtype]
    packed = array(code, vector)
    if sys.byteorder == "big":
        packed.byteswap()
    model = identity.encode("utf-8", "surrogatepass")[:MAX_IDENTITY_BYTES]
    header = _HEADER.pack(_MAGIC, code.encode(), len(packed), time.time(), ROLES[role], len(model))
    return header + model + packed.tobytes()


def decode_vector(value: bytes) -> list[float]:
    """The vector packed by :func:`encode_vector`; ``ValueError`` for anything else."""
    info, start = _read_header(value)
    packed: array[float] = array(DTYPES[info.dtype])
    if len(value) - start != info.dimensions * packed.itemsize:
        raise ValueError(f"a stored vector of {info.dimensions} dimensions has {len(value)} bytes")
    packed.frombytes(value[start:])
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


def vector_info(value: bytes) -> VectorInfo:
    """The header of a stored vector; ``ValueError`` if ``value`` is not one."""
    return _read_header(value)[0]


def _read_header(value: bytes) -> tuple[VectorInfo, int]:
    """The header of a stored vector (either format) and where its packed floats start."""
    magic = value[:3]
    if magic == _LEGACY_MAGIC and len(value) >= _LEGACY_HEADER.size:
        _magic, code, dimensions = _LEGACY_HEADER.unpack_from(value)
        return VectorInfo("", "", None, dimensions, _dtype(code)), _LEGACY_HEADER.size
    if magic != _MAGIC or len(value) < _HEADER.size:
        raise ValueError("not a stored vector")
    _magic, code, dimensions, created, role, length = _HEADER.unpack_from(value)
    start = _HEADER.size + length
    roles = {code: name for name, code in ROLES.items()}
    if role not in roles or start > len(value):
        raise ValueError("not a stored vector")
    identity = value[_HEADER.size : start].decode("utf-8", "replace")
    return VectorInfo(identity, roles[role], created, dimensions, _dtype(code)), start


def _dtype(code: bytes) -> str:
    for dtype, dtype_code in DTYPES.items():
        if code == dtype_code.encode():
            return dtype
    raise ValueError("not a stored vector")
