"""uvicorn's HTTP protocol with a response's head and body written to the socket together.

Why: uvicorn's httptools protocol writes a response's status line and headers when the app
starts the response and its body when the app sends it: two writes, so two packets, and two
wake-ups of a client waiting on the socket, for every answer. On the 2-core KVM guests we measure
on, a write that wakes another process is dear: sampled with py-spy (`--gil`) at concurrency 32,
POST /checks' head write was 17 % of the server's time holding the GIL and the body's 6 %.

Here each write is held until the next one, which takes it along, or until the event loop's next
turn, whichever comes first: a head followed at once by its body (every response Starlette makes
from a body in memory) leaves in one write, a streamed response's parts leave in pairs, and no
byte waits longer than the loop's current turn. The order of the bytes is the app's.

    uvicorn.run(app, http=JoinedWritesProtocol)      # what `crosscheck serve` does
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["JoinedWrites", "JoinedWritesProtocol"]

# Held data and a body are joined by copying both: past this a body goes on its own, after the
# held head, as one copy of a large body would cost more than the write it saves.
_JOIN_AT_MOST = 64 * 1024


class JoinedWrites:
    """A transport whose writes wait for the next write or the loop's next turn (see the
    module's docstring). Everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        held = self._held
        if held is None:
            self._held = data if type(data) is bytes else bytes(data)  # the caller may reuse its buffer
            self._loop.call_soon(self.flush)
            return
        self._held = None
        if len(data) <= _JOIN_AT_MOST:
            self._transport.write(held + data)
        else:
            self._transport.write(held)
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def flush(self) -> None:
        """Write what is held, now."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:  # pause_reading, get_extra_info, set_protocol, …
        return getattr(self._transport, name)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools (uvicorn without its "standard" extras): uvicorn's own choice
    JoinedWritesProtocol: Any = "auto"
else:
    class JoinedWritesProtocol(HttpToolsProtocol):  # type: ignore[no-redef]
        """uvicorn's httptools protocol over JoinedWrites."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
