"""The checker in a process of its own: POST /checks and uploaded batches checked beside the
server's event loop, not under its GIL.

    checks = CheckProcess(settings); checks.start()
    answer = checks.submit(members, as_of, rules, cadences).result()   # as CheckQueue.submit
    result, held = checks.check(frame, as_of)                          # as Checker.check (batches)
    checks.stop()

Why: in one process the event loop (HTTP, pydantic, JSON, audit) and the checking thread take
turns at one GIL, and every polars call of the checker hands it over. Measured at concurrency 32
with 100,000 households loaded, the gathered checks took 21 ms a batch while requests waited
five to ten times as long for the loop. A child process holds the index of the latest snapshots
(store.checks.Checker) and gathers the requests (store.check_queue.CheckQueue) exactly as the
server's own thread did; the server only parses, sends, and answers.

Messages are pickled over a pipe: requests as lists of strings (a household) or a loaded roll
frame (a batch); answers as CheckAnswer or (RunResult, held). The snapshots a check read are
ORM objects: each set is sent once, then named by its ids. If the child dies, every waiting
request fails with StoreBusy (503, retry) and a new child is started at once (by the next
request if the dead one had not lived a few seconds: one that cannot start is not restarted in
a loop). /health reports the child's state.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import queue
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import date
from multiprocessing.connection import Connection
from typing import Any

import polars as pl

from engine.errors import StoreBusy
from engine.run import RunResult

from .check_queue import CheckAnswer, CheckQueue, Columns, settle
from .models import Snapshot
from .settings import Settings

__all__ = ["CheckProcess"]

_STOP = ("stop", 0)
_YOUNG = 5.0  # seconds: a child that dies sooner is not restarted until a check needs it
Held = dict[str, Snapshot]


class CheckProcess:
    """A child process checking households (see the module's docstring). Thread-safe."""

    def __init__(self, settings: Settings, max_households: int = 64) -> None:
        self.settings = settings
        self.max_households = max_households
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future[Any]] = {}
        self._held: dict[tuple[int, ...], Held] = {}
        self._outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._stopped = False
        self.started = 0  # children started: 1 unless one died
        self.born = 0.0  # when the last was started (time.monotonic())
        self.cpu: int | None = None  # the CPU the child keeps to (see _pin), chosen at its first start

    def start(self) -> None:
        with self._lock:
            self._stopped = False
            if self._process is None:
                self._spawn()

    def _spawn(self) -> None:
        # spawn, never fork: polars' thread pool does not survive a fork.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe(duplex=True)
        if self.started == 0:
            self.cpu = _cpu_for_checks(self.settings)
        process = context.Process(target=_serve, args=(theirs, self.settings, self.max_households, self.cpu),
                                  name="crosscheck-checker", daemon=True)
        # One polars thread by default: the child's work is ~50 polars calls over a few rows per
        # group, each handed to the thread pool and back; measured at concurrency 32, one thread
        # gave 7 % more answers a second and a 9 % lower p99, for a 20 % slower index build.
        # polars reads it when imported, so it is set in the environment the child starts with.
        threads = self.settings.check_threads
        with _environment("POLARS_MAX_THREADS", str(threads)) if threads else nullcontext():
            process.start()
        theirs.close()
        self._process, self._connection = process, ours
        self._outbox = queue.SimpleQueue()
        self.started += 1
        self.born = time.monotonic()
        threading.Thread(target=self._read, args=(ours, process, self.born), name="check-process-reader",
                         daemon=True).start()
        threading.Thread(target=self._write, args=(ours, self._outbox), name="check-process-writer",
                         daemon=True).start()

    def keep_off(self) -> Callable[[], None]:
        """Keep this process's threads off the child's CPU (none when it keeps to none), polars'
        own pool aside; threads started later by these inherit it. A thread that may run on that
        CPU only is left there. Returns what undoes it: every thread moved, and every thread
        started meanwhile with a moved thread's CPUs, gets its CPUs back (a process that starts
        servers one after another, as the tests do, would otherwise keep threads on too few).

        Why: the child is on the critical path of every check, and on its CPU alone. Shared with
        the server's event loop and its pipe and audit threads, it waited for its CPU in the
        middle of a group (the slowest 1 % of checks fell on groups whose wall time was 1.3-2.3
        times their CPU time) and each group cost more CPU besides (in process 4.5 ms alone, 5.5
        ms taking turns with another process). Live at concurrency 32, ten interleaved pairs all
        in favour: p99 22.0-28.6 against 23.8-32.0 ms, 3-18 % more answers a second. Polars'
        pool keeps every CPU: the server's own polars work (an upload's reading, a scheduled run)
        is parallel, and seldom."""
        if self.cpu is None or not hasattr(os, "sched_setaffinity"):
            return lambda: None
        pool = _polars_pool()
        before: dict[int, set[int]] = {}
        for task in os.listdir("/proc/self/task"):
            if int(task) in pool:
                continue
            try:
                cpus = os.sched_getaffinity(int(task))
                if cpus - {self.cpu}:
                    os.sched_setaffinity(int(task), cpus - {self.cpu})
                    before[int(task)] = cpus
            except OSError:  # gone meanwhile
                pass

        # A thread started while kept off has its creator's CPUs less the child's: given back too.
        given_back = {frozenset(cpus - {self.cpu}): cpus for cpus in before.values()}

        def undo() -> None:
            for task in os.listdir("/proc/self/task"):
                try:
                    cpus = before.get(int(task))
                    if cpus is None and int(task) not in pool:
                        cpus = given_back.get(frozenset(os.sched_getaffinity(int(task))))
                    if cpus is not None:
                        os.sched_setaffinity(int(task), cpus)
                except OSError:  # gone meanwhile
                    pass

        return undo

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            process, outbox = self._process, self._outbox
        if process is None:
            return
        outbox.put(_STOP)
        outbox.put(None)
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)

    def state(self) -> str:
        """"ok" while the child runs; else why not (for /health)."""
        with self._lock:
            process, stopped = self._process, self._stopped
        if stopped:
            return "stopped"
        if process is None:
            return "stopped: started again by the next check"
        if not process.is_alive():
            return f"stopped: exit code {process.exitcode}, started again by the next check"
        return "ok"

    def submit(self, members: pl.DataFrame | Columns, as_of: date, rules: list[str] | None = None,
               cadences: list[str] | None = None) -> Future[CheckAnswer]:
        """One household's rows, as CheckQueue.submit takes them; the answer's `frame` is None."""
        return self._send("household", members, as_of, rules, cadences)

    def check(self, households: pl.DataFrame, as_of: date, rules: list[str] | None = None,
              cadences: list[str] | None = None) -> tuple[RunResult, Held]:
        """Checker.check in the child (a loaded roll frame: an uploaded batch)."""
        return self._send("frame", _compact(households), as_of, rules, cadences).result()  # type: ignore[no-any-return]

    def _send(self, kind: str, *payload: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the check process is stopped")
            if self._process is None:
                self._spawn()  # the last one died
            ident = next(self._ids)
            self._waiting[ident] = future
            self._outbox.put((kind, ident, *payload))
        return future

    def _write(self, connection: Connection, outbox: queue.SimpleQueue[tuple[Any, ...] | None]) -> None:
        # Sends happen here, not on the event loop: a batch's frame may fill the pipe for a while.
        # Whatever has been queued meanwhile goes as one message (_drained): at concurrency 32 a
        # message each cost both processes a write, a read and a wake-up per request.
        for messages, last in _drained(outbox):
            try:
                connection.send(messages)
            except (OSError, ValueError):
                return  # the reader hears the child is gone and fails what waits
            except Exception:  # not picklable: sent one by one, so that only its own request fails
                for message in messages:
                    try:
                        connection.send([message])
                    except (OSError, ValueError):
                        return
                    except Exception as error:
                        with self._lock:
                            future = self._waiting.pop(message[1], None)
                        if future is not None:
                            settle(future, error=error)
            if last:
                return

    def _read(self, connection: Connection, process: Any, born: float) -> None:
        while True:
            try:
                answers = connection.recv()  # every answer the child had ready: see _write
            except (EOFError, OSError):
                break
            for ident, ok, value, held in answers:
                with self._lock:
                    future = self._waiting.pop(ident, None)
                    if held is not None:
                        signature, snapshots = held
                        if snapshots is not None:
                            self._held[signature] = snapshots
                        snapshots = self._held.get(signature, {})
                if held is not None:  # outside the lock, which the event loop takes to send
                    value = self._with_held(value, snapshots)
                if future is not None:
                    settle(future, value if ok else None, None if ok else value)
        with self._lock:  # the child is gone: whoever waits hears it, and another is started
            if self._process is process:
                self._process = self._connection = None
                self._outbox.put(None)
                waiting, self._waiting = self._waiting, {}
                # At once, so that the index is ready again before the next check; but a child
                # that died young is left to the next check to restart, not restarted in a loop.
                if not self._stopped and time.monotonic() - born >= _YOUNG:
                    self._spawn()
            else:
                waiting = {}
        connection.close()
        for future in waiting.values():
            settle(future, error=StoreBusy("核对服务已中断，请重试 the check process stopped; try again"))

    @staticmethod
    def _with_held(value: Any, held: Held) -> Any:
        if isinstance(value, CheckAnswer):  # its flags were sent as rows only (see _serve): flags_frame()
            # Just unpickled, so ours to change: dataclasses.replace cost ~4.7 µs an answer.
            value.held = held
            return value
        result, _ = value
        return result, held


def _drained(outbox: queue.SimpleQueue[Any]) -> Iterator[tuple[list[Any], bool]]:
    """What `outbox` holds, a list at a time: the first message waited for, then every one
    already there; and whether the end (None) came after them."""
    while (message := outbox.get()) is not None:
        messages = [message]
        while True:
            try:
                message = outbox.get_nowait()
            except queue.Empty:
                break
            if message is None:
                yield messages, True
                return
            messages.append(message)
        yield messages, False


_ENVIRONMENT = threading.Lock()


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """`name` set to `value` in this process's environment while a child is started."""
    with _ENVIRONMENT:
        before = os.environ.get(name)
        os.environ[name] = value
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with buffers of its own, to be pickled. A frame filtered out of a larger one
    may still share that one's buffers (nested lists of strings do), and pickling writes them
    whole: a city batch's 172 resolutions pickled to 208 MB in 0.6 s instead of 120 kB. An Arrow
    IPC round trip writes only the rows'."""
    buffer = frame.write_ipc(None)
    buffer.seek(0)
    return pl.read_ipc(buffer)


def _polars_pool(wait: float = 1.0) -> set[int]:
    """The thread ids of polars' pool in this process, made now if it is not yet (each thread
    names itself `polars-N` once started: waited for, up to `wait` seconds)."""
    size = pl.thread_pool_size()
    deadline = time.monotonic() + wait
    while True:
        pool = set()
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/comm") as name:
                    if re.fullmatch(r"polars-\d+", name.read().strip()):
                        pool.add(int(task))
            except OSError:
                pass
        if len(pool) >= size or time.monotonic() > deadline:
            return pool
        time.sleep(0.005)


def _cpu_for_checks(settings: Settings) -> int | None:
    """The CPU the check process keeps to (see _pin): the one the server's thread runs on as it
    starts the first child; None when it keeps to none (polars on more than one thread, the
    setting off, a single CPU)."""
    if settings.check_threads != 1 or not settings.check_pin or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        return None
    # Where it runs, not a fixed one: two servers on one machine should not share a CPU for
    # their checks by rule.
    return _running_on(cpus)


def _pin(cpu: int | None) -> None:
    """Keep this process (the child) to `cpu`, when one was chosen (_cpu_for_checks).

    Why: with polars on one thread its work is sequential, the checking thread handing each
    query to polars' pool thread and waiting for it. On one CPU the two switch in place; on two,
    every query wakes the other CPU, which a virtual machine makes slow: a trivial query took
    180 µs against 100 µs, and at concurrency 32 the server answered 1,082-1,112 against 883-928
    requests/s."""
    if cpu is None:
        return
    for task in os.listdir("/proc/self/task"):  # every thread so far; later ones inherit it
        try:
            os.sched_setaffinity(int(task), {cpu})
        except OSError:  # gone meanwhile
            pass


def _running_on(cpus: set[int]) -> int:
    """The CPU this thread runs on now (Linux: /proc/self/stat's 39th field), if among `cpus`;
    else the last of them."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        cpu = int(fields[36])  # fields from the 3rd on: the 39th is the 37th here
    except (OSError, IndexError, ValueError):
        return max(cpus)
    return cpu if cpu in cpus else max(cpus)


def _serve(connection: Connection, settings: Settings, max_households: int, cpu: int | None = None) -> None:
    """The child: a Checker and its CheckQueue, fed from the pipe until told to stop.

    One thread reads the requests, checks them and sends the answers, in turn: between two
    groups it takes every request the pipe holds, checks the next group, and sends that group's
    answers as one message. Threads for each (as before) handed the GIL over three times a
    round trip, each wait up to the switch interval while another thread ran Python: measured at
    concurrency 32, ~0.9 ms from a group's end to its answers leaving, ~0.7 ms from a request's
    arrival to its being queued. An uploaded batch is checked on a thread of its own and its
    answer sent from there (the pipe is shared under a lock)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    _pin(cpu)
    from .checks import Checker
    from .db import Store

    store = Store.open(settings, migrate=False)  # the server has migrated it
    checker = Checker(store)
    checks = CheckQueue(checker, max_households=max_households, keep_frames=False)  # driven here: step()
    batches = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-batch")
    sending = threading.Lock()
    sent: set[tuple[int, ...]] = set()  # snapshot sets the server has been sent
    ready: list[tuple[Any, ...]] = []  # the answers of the group just checked

    def held_of(held: Held) -> tuple[tuple[int, ...], Held | None]:
        signature = tuple(sorted(snapshot.id for snapshot in held.values()))
        return signature, (None if signature in sent else held)

    def answer_of(ident: int, future: Future[Any]) -> tuple[Any, ...]:
        error = future.exception()
        if error is not None:
            return (ident, False, error, None)
        if isinstance(value := future.result(), CheckAnswer):
            # The flags go as the rows the answer carries anyway: a frame costs its pickling
            # (Arrow IPC) on this, the checking, thread even when empty, as most are.
            # Nobody else holds this answer (the queue made it for this request): its snapshots,
            # named by `held_of`, are taken off it in place, not by dataclasses.replace (~4.7 µs).
            held = value.held
            value.held, value.frame, value.flags = {}, None, None
            return (ident, True, value, held_of(held))
        result, held = value
        result = replace(result, flags=_compact(result.flags), resolutions=_compact(result.resolutions))
        return (ident, True, (result, {}), held_of(held))

    def deliver(messages: list[tuple[Any, ...]]) -> bool:
        """Send `messages` as one (False when the server is gone)."""
        with sending:
            delivered = messages
            try:
                connection.send(messages)
            except (OSError, ValueError):
                return False
            except (pickle.PicklingError, TypeError, AttributeError):
                delivered = []
                for message in messages:  # one by one: only an unsendable answer fails
                    try:
                        try:
                            connection.send([message])
                            delivered.append(message)
                        except (pickle.PicklingError, TypeError, AttributeError) as unsendable:
                            ident, ok, value, _held = message
                            what = f"{type(value).__name__}: {value}" if not ok else f"unsendable answer: {unsendable}"
                            connection.send([(ident, False, RuntimeError(what), None)])
                    except (OSError, ValueError):
                        return False
            for message in delivered:  # the snapshots a delivered answer carried are named by ids from now on
                if message[3] is not None:
                    sent.add(message[3][0])
            return True

    def read() -> list[Any] | None:
        """Every request the pipe holds, waiting for one only when none is queued; None: stop."""
        messages: list[Any] = []
        try:
            if not checks.waiting:
                messages += connection.recv()  # every request the server had ready: see CheckProcess._write
            while connection.poll():
                messages += connection.recv()
        except (EOFError, OSError):
            return None
        return None if any(kind == "stop" for kind, *_ in messages) else messages

    # The first request should not wait for the index (seconds at city scale): build it now.
    threading.Thread(target=_warm, args=(checker,), name="check-warm", daemon=True).start()
    try:
        while (messages := read()) is not None:
            for kind, ident, *payload in messages:
                if kind == "household":
                    try:
                        pending = checks.submit(*payload)
                    except Exception as error:  # not a household's rows: its own request fails
                        ready.append((ident, False, error, None))
                        continue
                    # Settled on this thread by step(): its answer waits for the group's others.
                    pending.add_done_callback(lambda future, ident=ident: ready.append(answer_of(ident, future)))
                else:
                    batches.submit(checker.check, *payload).add_done_callback(
                        lambda future, ident=ident: deliver([answer_of(ident, future)]))
            checks.step()
            if ready:
                answers, ready[:] = list(ready), []
                if not deliver(answers):
                    break
    finally:
        checks.stop()
        batches.shutdown(wait=False, cancel_futures=True)
        store.close()


def _warm(checker: Any) -> None:
    try:
        checker.current()
    except Exception:  # noqa: BLE001 - no snapshot yet, say: the first check reports it
        pass
