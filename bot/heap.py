"""The garbage collector after start: what start-up built is set aside, so full collections stay short.

A full (generation-2) collection walks every object the collector tracks. In a started bot those
are mostly the libraries' modules, classes and tables, the catalogs and the compiled statements,
which live as long as the process; one full collection of them took about 100 ms here, in the
middle of whatever event was being handled (`bench.accept_race`: one round's 50 Accepts all waited
for it). `gc.freeze` moves every object alive at that moment into a generation no collection walks,
so later full collections look only at what was made since. Garbage is collected first: what is
frozen is never collected.
"""

import gc


def set_aside_start_up() -> None:
    """Collect start-up's garbage, then keep what is left out of every later collection."""
    gc.collect()
    gc.freeze()
