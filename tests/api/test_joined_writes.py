"""api.joined_writes: a response's head and body leave in one write; no byte is lost, reordered,
or held past the event loop's turn; and uvicorn serves real requests over it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from api.joined_writes import JoinedWrites, JoinedWritesProtocol


class Recorder:
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:  # after close too: the tests look (a callback's assert would only be logged)
        self.writes.append(bytes(data))
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def write_eof(self) -> None:
        self.events.append("eof")

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


async def _turn() -> None:
    """Let the loop finish its turn (callbacks scheduled now run before this returns)."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _run(test: Any) -> Any:
    return asyncio.run(test())


def test_a_head_and_its_body_leave_in_one_write() -> None:
    async def test() -> None:
        transport = Recorder()
        joined = JoinedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert transport.writes == []
        joined.write(b"{}")
        assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        await _turn()
        assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    _run(test)


def test_a_lone_write_leaves_when_the_loop_turns() -> None:
    async def test() -> None:
        transport = Recorder()
        joined = JoinedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        joined.write(b"head")
        assert transport.writes == []
        assert joined.get_write_buffer_size() == 7 + 4
        await _turn()
        assert transport.writes == [b"head"]
    _run(test)


def test_a_large_body_goes_after_the_head_on_its_own() -> None:
    async def test() -> None:
        transport = Recorder()
        joined = JoinedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        body = b"x" * (1 << 20)
        joined.write(b"head")
        joined.write(body)
        assert transport.writes == [b"head", body]
    _run(test)


def test_a_buffer_the_caller_reuses_is_held_as_it_was() -> None:
    async def test() -> None:
        transport = Recorder()
        joined = JoinedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        buffer = bytearray(b"abc")
        joined.write(buffer)
        buffer[:] = b"zzz"
        joined.write(memoryview(b"def"))
        assert transport.writes == [b"abcdef"]
    _run(test)


def test_close_and_eof_send_what_is_held_first_and_abort_drops_it() -> None:
    async def test() -> None:
        loop = asyncio.get_running_loop()
        transport = Recorder()
        joined = JoinedWrites(transport, loop)  # type: ignore[arg-type]
        joined.write(b"bye")
        joined.close()
        assert transport.events == ["write", "close"] and transport.writes == [b"bye"]
        await _turn()  # the flush the write scheduled finds nothing left
        assert transport.writes == [b"bye"]

        transport = Recorder()
        joined = JoinedWrites(transport, loop)  # type: ignore[arg-type]
        joined.write(b"last")
        joined.write_eof()
        assert transport.events == ["write", "eof"]

        transport = Recorder()
        joined = JoinedWrites(transport, loop)  # type: ignore[arg-type]
        joined.write(b"lost")
        joined.abort()
        await _turn()
        assert transport.events == ["abort"]
    _run(test)


def test_nothing_is_written_to_a_transport_already_closing() -> None:
    async def test() -> None:
        transport = Recorder()
        joined = JoinedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        joined.write(b"late")
        transport.closing = True  # the peer went away
        await _turn()
        assert transport.writes == []
    _run(test)


def test_everything_else_is_the_transports() -> None:
    async def test() -> None:
        joined = JoinedWrites(Recorder(), asyncio.get_running_loop())  # type: ignore[arg-type]
        assert joined.get_extra_info("peername") == ("127.0.0.1", 5)
        assert joined.is_closing() is False
    _run(test)


# Each step: bytes written, or the loop let turn.
steps = st.lists(st.one_of(st.binary(min_size=0, max_size=40), st.just(None)), max_size=30)


@given(steps)
@settings(max_examples=200, deadline=None)
def test_every_byte_arrives_in_order_in_no_more_writes_and_none_held_past_a_turn(plan: list[bytes | None]) -> None:
    async def test() -> None:
        transport = Recorder()
        joined = JoinedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        sent = b""
        writes = 0
        for step in plan:
            if step is None:
                await _turn()
                assert b"".join(transport.writes) == sent  # nothing held past a turn
            else:
                joined.write(step)
                sent += step
                writes += bool(step)
        await _turn()
        assert b"".join(transport.writes) == sent
        assert len(transport.writes) <= writes
    _run(test)


# ---- over a real uvicorn ------------------------------------------------------------------

async def _plain(request: Request) -> Response:
    return PlainTextResponse("你好" * int(request.query_params.get("n", "1")))


async def _streamed(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for part in range(5):
            yield f"part {part};".encode()
            await asyncio.sleep(0.001)
    return StreamingResponse(parts(), media_type="text/plain")


@pytest.fixture(scope="module")
def served() -> Iterator[int]:
    app = Starlette(routes=[Route("/plain", _plain), Route("/streamed", _streamed)])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=JoinedWritesProtocol,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _exchange(port: int, requests: bytes, answers: int) -> bytes:
    """What the server answers `requests` (sent at once on one kept-alive connection), read until
    `answers` complete responses have come."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(requests)
        received = b""
        while received.count(b"HTTP/1.1 ") < answers or not _complete(received, answers):
            chunk = connection.recv(1 << 16)
            assert chunk, f"the server closed the connection after {received!r}"
            received += chunk
        return received


def _complete(received: bytes, answers: int) -> bool:
    last = received.rsplit(b"HTTP/1.1 ", 1)[-1]
    head, _, body = last.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head:
        return body.endswith(b"0\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), None)
    return length is not None and len(body) >= length


def test_uvicorn_answers_kept_alive_requests_over_it(served: int) -> None:
    get = b"GET /plain?n=%d HTTP/1.1\r\nhost: x\r\n\r\n"
    received = _exchange(served, get % 1 + get % 3 + get % 50_000, 3)
    answers = received.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert [a.partition(b"\r\n\r\n")[2] for a in answers] == [("你好" * n).encode() for n in (1, 3, 50_000)]


def test_uvicorn_streams_a_response_over_it(served: int) -> None:
    received = _exchange(served, b"GET /streamed HTTP/1.1\r\nhost: x\r\n\r\n", 1)
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    parts = body.split(b"\r\n")[1::2][:-1]  # chunked: size, data, size, data, ..., 0
    assert b"".join(parts) == b"".join(f"part {i};".encode() for i in range(5))
