"""After start the bot sets its start-up aside from the garbage collector (bot/heap.py)."""

import gc
import weakref

from bot.heap import set_aside_start_up


class _Node:
    """An object in a reference cycle: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _tracked(obj: object) -> bool:
    """Whether a collection of any generation would look at `obj` (frozen objects are in none)."""
    return any(o is obj for o in gc.get_objects())


def test_start_up_is_frozen_and_its_garbage_collected_first() -> None:
    garbage = _Node()
    gone = weakref.ref(garbage)
    del garbage
    kept = _Node()
    assert _tracked(kept)
    try:
        set_aside_start_up()
        assert gone() is None  # collected before the freeze, not kept forever
        assert not _tracked(kept)  # set aside: no later collection walks it
        made_after = _Node()
        assert _tracked(made_after)
        assert kept.me is kept
    finally:
        gc.unfreeze()
    assert _tracked(kept)
