"""AMF0 encoding and decoding: the value format of RTMP commands and script data (onMetaData).

Python values map to AMF0 markers as follows: ``float``/``int`` <-> number, ``bool`` <-> boolean,
``str`` <-> string or long string, ``dict`` <-> object, `EcmaArray` <-> ECMA array,
``list``/``tuple`` <-> strict array, `Date` (or an aware ``datetime`` when encoding) <-> date,
``None`` <-> null and `UNDEFINED` <-> undefined. Decoding raises ``ValueError`` on any malformed input.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED_MARKER = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10

# Nesting deeper than this is not something a real client sends; refusing it keeps
# malformed input from exhausting the Python stack.
MAX_DEPTH = 64

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE = struct.Struct(">dh")
_OBJECT_END_BYTES = b"\x00\x00\x09"


class _Undefined:
    """The AMF0 ``undefined`` value (distinct from ``null``, which is ``None``)."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED = _Undefined()


class EcmaArray(dict):
    """An AMF0 ECMA array (an associative array, as ``onMetaData`` usually is)."""


@dataclass(frozen=True)
class Date:
    """An AMF0 date: milliseconds since the Unix epoch and a (reserved, usually 0) time zone offset."""

    timestamp_ms: float
    timezone: int = 0

    def to_datetime(self) -> datetime.datetime:
        """The date as an aware UTC datetime; ValueError when it is out of datetime's range."""
        try:
            return datetime.datetime.fromtimestamp(self.timestamp_ms / 1000.0, tz=datetime.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"AMF0 date out of range: {self.timestamp_ms!r}") from exc

    @classmethod
    def from_datetime(cls, value: datetime.datetime) -> Date:
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return cls(value.timestamp() * 1000.0)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(*values: Any) -> bytes:
    """Encode values one after the other, as an RTMP command or data message body carries them."""
    out = bytearray()
    for value in values:
        _encode_value(out, value, 0)
    return bytes(out)


def _encode_utf8(out: bytearray, text: str) -> None:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("AMF0 property name longer than 65535 bytes")
    out += _U16.pack(len(data))
    out += data


def _encode_properties(out: bytearray, mapping: Mapping[Any, Any], depth: int) -> None:
    for key, item in mapping.items():
        _encode_utf8(out, str(key))
        _encode_value(out, item, depth + 1)
    out += _OBJECT_END_BYTES


def _encode_value(out: bytearray, value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("AMF0 value nested too deeply")
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _DOUBLE.pack(float(value))
    elif isinstance(value, str):
        data = value.encode("utf-8")
        if len(data) <= 0xFFFF:
            out.append(STRING)
            out += _U16.pack(len(data))
        else:
            out.append(LONG_STRING)
            out += _U32.pack(len(data))
        out += data
    elif isinstance(value, EcmaArray):
        out.append(ECMA_ARRAY)
        out += _U32.pack(len(value))
        _encode_properties(out, value, depth)
    elif isinstance(value, Mapping):
        out.append(OBJECT)
        _encode_properties(out, value, depth)
    elif isinstance(value, list | tuple):
        out.append(STRICT_ARRAY)
        out += _U32.pack(len(value))
        for item in value:
            _encode_value(out, item, depth + 1)
    elif isinstance(value, datetime.datetime):
        _encode_value(out, Date.from_datetime(value), depth)
    elif isinstance(value, Date):
        out.append(DATE)
        out += _DATE.pack(value.timestamp_ms, value.timezone)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


# ---------------------------------------------------------------------------------------------
# Decoding


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one value; ValueError if ``data`` is malformed or has bytes left over."""
    decoder = Decoder(data)
    value = decoder.read_value()
    if not decoder.at_end:
        raise ValueError(f"{decoder.remaining} bytes left after the AMF0 value")
    return value


def decode_all(data: bytes | bytearray | memoryview) -> list[Any]:
    """Decode every value of an RTMP command or data message body."""
    return list(Decoder(data))


class Decoder:
    """Sequential AMF0 reader over one buffer."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def __iter__(self) -> Iterator[Any]:
        while not self.at_end:
            yield self.read_value()

    def read_value(self) -> Any:
        """The next value; ValueError when the buffer is truncated or malformed."""
        return self._read_value(0)

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise ValueError("truncated AMF0 data")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def _read_u16(self) -> int:
        return _U16.unpack(self._take(2))[0]

    def _read_u32(self) -> int:
        return _U32.unpack(self._take(4))[0]

    def _read_text(self, length: int) -> str:
        return self._take(length).decode("utf-8", errors="replace")

    def _read_properties(self, target: dict[str, Any], depth: int) -> None:
        data = self._data
        while True:
            name = self._read_text(self._read_u16())
            if self._pos < len(data) and data[self._pos] == OBJECT_END:
                self._pos += 1
                if name:
                    raise ValueError("AMF0 object end marker after a non-empty property name")
                return
            target[name] = self._read_value(depth + 1)

    def _read_value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("AMF0 value nested too deeply")
        marker = self._take(1)[0]
        if marker == NUMBER:
            return _DOUBLE.unpack(self._take(8))[0]
        if marker == BOOLEAN:
            return self._take(1)[0] != 0
        if marker == STRING:
            return self._read_text(self._read_u16())
        if marker == LONG_STRING or marker == XML_DOCUMENT:
            return self._read_text(self._read_u32())
        if marker == OBJECT:
            obj: dict[str, Any] = {}
            self._read_properties(obj, depth)
            return obj
        if marker == TYPED_OBJECT:
            self._read_text(self._read_u16())  # class name: carried, but not meaningful here
            typed: dict[str, Any] = {}
            self._read_properties(typed, depth)
            return typed
        if marker == ECMA_ARRAY:
            # The count is only a hint (encoders get it wrong); the end marker terminates it.
            self._read_u32()
            array = EcmaArray()
            self._read_properties(array, depth)
            return array
        if marker == STRICT_ARRAY:
            count = self._read_u32()
            if count > self.remaining:  # every element takes at least one byte
                raise ValueError("AMF0 strict array longer than its data")
            return [self._read_value(depth + 1) for _ in range(count)]
        if marker == NULL:
            return None
        if marker == UNDEFINED_MARKER or marker == UNSUPPORTED:
            return UNDEFINED
        if marker == DATE:
            timestamp_ms, timezone = _DATE.unpack(self._take(10))
            return Date(timestamp_ms, timezone)
        if marker == OBJECT_END:
            raise ValueError("unexpected AMF0 object end marker")
        raise ValueError(f"unsupported AMF0 marker 0x{marker:02x}")
