"""The threads that talk to the database: on SQLite one for the whole process, on PostgreSQL several.

SQLite takes one writer at a time, and every transaction here is a writer (`BEGIN IMMEDIATE`);
a writer that finds it busy polls with growing sleeps (up to 100 ms), so threads that contend for
it wait longer than the work takes. One thread for everything that writes (handling events,
recording deliveries) queues them without those sleeps. PostgreSQL takes writers side by side.
"""

import asyncio
import functools
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

T = TypeVar("T")
_SQLITE: "weakref.WeakKeyDictionary[Engine, ThreadPoolExecutor]" = weakref.WeakKeyDictionary()


def database_thread(engine: Engine, *, workers: int, name: str) -> ThreadPoolExecutor:
    """The executor for database work: shared by the process on SQLite, `workers` of its own otherwise."""
    if engine.dialect.name != "sqlite":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    executor = _SQLITE.get(engine)
    if executor is None:
        executor = _SQLITE[engine] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
    return executor


async def run_in(executor: ThreadPoolExecutor, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` in `executor`, awaited from the event loop."""
    return await asyncio.get_running_loop().run_in_executor(
        executor, functools.partial(function, *args, **kwargs)
    )
