"""MQTT bytes for the controller's read-ahead (controller.publishing._ReadAhead): packets
framed by hand, and a socket stand-in that hands them out in chosen chunks, as a
non-blocking socket does, with nothing on the wire."""

from __future__ import annotations


class ChunkedSocket:
    """Hands out `stream` in chunks of `sizes` (the last size repeats; none: all at once),
    then has nothing more (BlockingIOError, as a non-blocking socket says)."""

    def __init__(self, stream: bytes, sizes: list[int] | int) -> None:
        sizes = [sizes] if isinstance(sizes, int) else sizes or [len(stream) or 1]
        self.chunks: list[bytes] = []
        at = 0
        while at < len(stream):
            size = max(1, sizes[min(len(self.chunks), len(sizes) - 1)])
            self.chunks.append(stream[at : at + size])
            at += size

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        return self.chunks.pop(0)

    def send(self, buffer: bytes | bytearray) -> int:
        return len(buffer)

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def setblocking(self, flag: bool) -> None:
        pass


def packet(first: int, body: bytes) -> bytes:
    """An MQTT packet: its first byte, the remaining length (7 bits a byte), `body`."""
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([first, *encoded]) + body
