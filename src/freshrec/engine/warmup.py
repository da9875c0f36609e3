"""Compile every numba kernel the processor and the recommender run, before a server listens.

The kernels are compiled on first use and cached on disk (``cache=True``). On a new install the
cache is empty. Compiling then takes tens of seconds on a 2-core machine, and it holds the
interpreter. If the embedded server's processor compiled at its first micro-batch, after the
server had started listening, every request of that minute would wait up to 18 s: the dashboard
said "connecting…" and the first shoppers got nothing. So the server compiles first, on a
throwaway in-memory engine fed a small simulated shop, and opens its port after.

With a warm cache this only loads the compiled code: about a second, once per process (a second
call returns at once). Every path is covered:

- the online state;
- every model's learning and scoring, the ensemble's blend and live quality;
- cold start and the filters (``rank_every_path``, which a server also runs on its own engine);
- the int8 copy of MF's item factors, which is scanned only above a few thousand items, so a
  small shop would not reach it.

>>> seconds = compile_kernels()
>>> seconds >= 0.0
True
"""

from __future__ import annotations

import logging
import time

import numpy as np

from freshrec.engine.engine import Engine
from freshrec.models.quantised import QuantisedRows
from freshrec.sim import ShopSimulator
from freshrec.state.catalogue import Item

EVENTS = 2000  # of the throwaway shop: enough for sessions, purchases and a live-quality test
ITEMS = 120

log = logging.getLogger(__name__)
_compiled = False  # in this process: the kernels stay loaded once they are


def compile_kernels() -> float:
    """Run every kernel once on a throwaway in-memory engine; the seconds it took (0 once they
    were, in this process)."""
    global _compiled
    if _compiled:
        return 0.0
    log.info("loading the compiled kernels (compiling them on a first start takes a minute)")
    started = time.perf_counter()
    shop = ShopSimulator(n_items=ITEMS, n_categories=4, n_shoppers=30, seed=0)
    with Engine.open(None, live_eval_every=50) as engine:
        engine.catalogue.upsert([Item(**record) for record in shop.catalogue.records()])
        events = shop.take(EVENTS)
        engine.ingest(events)
        engine.process()
        rank_every_path(engine)
        engine.similar(events[-1]["item_id"], k=5)
    rows = QuantisedRows(4)  # the int8 copy: refresh, quantise and scan
    rows.top(np.eye(4, dtype=np.float32), np.ones(4, dtype=np.float32), 4, 2)
    _compiled = True
    return time.perf_counter() - started


def rank_every_path(engine: Engine) -> None:
    """Rank once along every path of ``engine``: cold start and a known shopper's history, each
    kind of filter, and the cold-start strategy."""
    users = engine.state.users
    someone = users.key(len(users) - 1) if len(users) else ""
    category = next(
        (item.category for item in engine.catalogue.records if item and item.category), "x"
    )
    variants = [
        {},
        {"category": category},
        {"min_price": 1.0, "max_price": 100.0},
        {"max_per_category": 2, "exclude_viewed": True},
    ]
    for given in variants:
        for user in ("", someone):
            engine.serve(user, 10, engine.default_filters(**given))
    engine.serve("", 10, engine.default_filters(), strategy="cold_start")
