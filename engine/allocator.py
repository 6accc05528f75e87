"""The memory allocator's setting for a batch process (`crosscheck run`), made before polars loads.

    allocator.for_batch()      # first thing in the process: True when it took effect

polars' allocator (jemalloc) hands freed pages back to the system after 0.5 s (polars sets
`dirty_decay_ms:500`, so that a long-lived process does not hold memory it no longer uses). A
run from files validates 28M rows a piece at a time: each piece's buffers are freed and the
next piece's allocated, and at 0.5 s most of them come back as fresh pages that the kernel
zeroes on first touch (~0.77M page faults, ~2 s of system time in a city's run). Kept for 5 s,
they are used again (~0.65M faults): the city's run from files, in process, 6.5-7.2 -> 6.2-6.4
s, ~0.5 s less CPU; through the CLI faster in four of five pairs (mean 6.92 -> 6.72 s); the
peak ~80 MB higher (benchmarks/HISTORY.md, the passes round; kept for ever, the peak rose by
~0.6 GB). A server keeps polars' own setting.

polars reads `_RJEM_MALLOC_CONF` when it is first imported, adding its value after its own (a
later setting wins), and writes the result back: so this must run before that import, and once
the variable is there (polars loaded, or the user's own setting) it is left as it is.
"""

from __future__ import annotations

import os

__all__ = ["BATCH", "VARIABLE", "for_batch"]

VARIABLE = "_RJEM_MALLOC_CONF"
BATCH = "dirty_decay_ms:5000"


def for_batch() -> bool:
    """Set the batch setting for this process (and its children). False when the variable is
    set already (polars is loaded, or the user set it): then nothing is changed."""
    if VARIABLE in os.environ:
        return False
    os.environ[VARIABLE] = BATCH
    return True
