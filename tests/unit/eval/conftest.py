"""Tiny event streams with a known answer for the evaluator's tests."""

from __future__ import annotations

from freshrec.events import LoggedEvent


def stream(pairs: list[tuple[str, str]], start: float = 1_000.0, step: float = 10.0):
    """``LoggedEvent`` views of ``(user, item)`` pairs, ``step`` seconds apart."""
    return [LoggedEvent(0, u, i, start + step * n) for n, (u, i) in enumerate(pairs)]


def copycat(n_items: int = 12, rounds: int = 3) -> list[LoggedEvent]:
    """Leaders A_r walk items 0..n-1; each follower B_r repeats the walk one step behind.

    A follower's next item is always the successor of its previous item, which its leader
    visited just before: a successor model must hit nearly every test of the followers.
    """
    pairs = []
    for r in range(rounds):
        pairs.append((f"A{r}", "i0"))
        for n in range(1, n_items):
            pairs.append((f"A{r}", f"i{n}"))
            pairs.append((f"B{r}", f"i{n - 1}"))
        pairs.append((f"B{r}", f"i{n_items - 1}"))
    return stream(pairs)
