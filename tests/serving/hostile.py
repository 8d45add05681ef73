"""Hostile clients on raw sockets: partial bodies, dripped bodies, stalls, and image headers that lie.

Shared by the service's and the model server's tests; every socket is on
loopback and every wait bounded.
"""

import socket
import struct
import threading
import time
import zlib
from typing import List, Tuple

BOUNDARY = "hostile-boundary"


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG whose header declares `width` x `height` RGB pixels, with a few rows of real data:
    what matters to a bomb check is the header, which is all a header check may read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (3 * width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def multipart(name: str, data: bytes, field: str = "files") -> Tuple[bytes, str]:
    """(body, content type) of a one-file multipart/form-data upload in `field`."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def request_head(
    port: int, path: str, content_type: str, length: int, method: str = "POST", headers: str = ""
) -> bytes:
    """The request line and headers; `headers` adds lines of its own, each ending in CRLF."""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n{headers}\r\n"
    ).encode()


def tiny_parts(count: int) -> Tuple[bytes, str]:
    """(body, content type) of `count` one-byte file parts: cheap to send, costly to parse whole."""
    part = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="p"\r\n\r\nx\r\n').encode()
    return part * count + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def connect(port: int, timeout_s: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout_s)


def read_until_closed(sock: socket.socket, timeout_s: float) -> Tuple[bytes, bool]:
    """Everything the server sends until it closes the connection or `timeout_s` passes; (bytes, closed)."""
    deadline = time.monotonic() + timeout_s
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received, True
        if not data:
            return received, True
        received += data
    return received, False


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP/1.1 response; 0 for none."""
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 2 and parts[0].startswith(b"HTTP/") else 0


class Dripper(threading.Thread):
    """Sends a request's head, then its body `chunk` bytes every `every_s` seconds for as long as the server
    reads, then records what the server answered and whether it closed the connection."""

    def __init__(self, port: int, path: str, body: bytes, content_type: str, chunk: int, every_s: float):
        super().__init__(daemon=True)
        self.sock = connect(port)
        self.sock.sendall(request_head(port, path, content_type, len(body)))
        self.body, self.chunk, self.every_s = body, chunk, every_s
        self.response = b""
        self.closed = False

    def run(self) -> None:
        self.sock.settimeout(self.every_s)
        for start in range(0, len(self.body), self.chunk):
            try:
                self.sock.sendall(self.body[start : start + self.chunk])
                answer = self.sock.recv(65536)
            except TimeoutError:
                continue  # nothing to read yet: drip on
            except OSError:
                self.closed = True
                return
            self.response += answer
            rest, self.closed = read_until_closed(self.sock, 10) if answer else (b"", True)
            self.response += rest
            return


def open_many(port: int, count: int) -> List[socket.socket]:
    return [connect(port) for _ in range(count)]
