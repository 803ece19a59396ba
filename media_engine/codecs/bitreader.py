"""A bit reader with Exp-Golomb codes, for parsing H.264 parameter sets."""

from __future__ import annotations


class BitReader:
    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._length = len(data) * 8
        self._position = 0

    def bits(self, count: int) -> int:
        if count == 0:
            return 0
        if self._position + count > self._length:
            raise ValueError("read past the end of the data")
        shift = self._length - self._position - count
        self._position += count
        return (self._value >> shift) & ((1 << count) - 1)

    def bit(self) -> int:
        return self.bits(1)

    def ue(self) -> int:
        """Unsigned Exp-Golomb code."""
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        """Signed Exp-Golomb code."""
        value = self.ue()
        return (value + 1) // 2 if value % 2 else -(value // 2)
