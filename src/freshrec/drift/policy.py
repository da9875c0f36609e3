"""What freshrec does when a drift detector fires: recalibrate towards recent data.

Four moves, each a setting (1 = off):

- **forget**: every decayed model's stored weights (popularity, co-visitation, slow and fast)
  are scaled by ``forget`` -- an instant extra decay of ``log2(1 / forget)`` half-lives, so the
  events after the change outweigh everything before it sooner than the normal half-life would
  -- or by less, so that what they learned before weighs at most ``keep_events`` events (a
  quarter of a long history is still a long history: a shop with months of events would keep
  weeks of stale weight, which its new traffic would take weeks to outweigh). "Events learned"
  counts the log's events since the start, less what earlier actions forgot: an upper bound of
  what a decayed model still holds, so the kept weight is at most ``keep_events`` events;
- **shrink users**: the online MF's user factors are scaled by ``shrink_users`` (0 resets them):
  stale profiles count less, the fold-in of the user's recent items more -- except when the
  detection says the *catalogue* changed (``new_items:category=…``: a category's items replaced
  or renamed): the shoppers' tastes are what they were, so their profiles are kept;
- **discount old history** (not on a catalogue change): co-visitation counts a user's items last
  touched before the detection ``history`` times as sources of candidates (0: not at all; 1 =
  off), until the next detection: the paths out of what shoppers looked at before a change of
  tastes lead to the old tastes, and their items are still in every shopper's recent history;
- **boost fast members**: the ensemble priors of the short-window members (``*_fast``) are
  multiplied by ``boost`` for ``boost_events`` events, then restored; the weights still follow
  live hit rates on top of the priors.

Forgetting needs a sign that what the models know about *items* has gone stale: a hit rate
fell, the popular items stopped drawing the events, new items took over, served lists stopped
being clicked. A shift of the category mix alone (``MIX_SIGNALS``: shoppers spend their attention
on other categories) says no such thing -- what is known inside each category may still hold, as
when a new category draws half of the traffic -- so it does the other moves but keeps the
learned weights.

Actions are rate-limited: a detection within ``cooldown_events`` of the last action is recorded
with action ``"none (cooldown)"`` -- unless it calls for forgetting and nothing was forgotten
within the cooldown: then it forgets (and does nothing else).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec
import numpy as np

from freshrec.models import OnlineMF
from freshrec.models.ensemble import Ensemble


class Forgetful(Protocol):
    name: str

    def forget(self, factor: float) -> None: ...


CATALOGUE_SIGNALS = ("new_items:category=",)  # a change of the catalogue, not of the shoppers
MIX_SIGNALS = ("category_shift",)  # the category mix moved: no sign that item knowledge is stale


class Recalibration:
    """Applies the recalibration moves to the models and the ensemble; says what it did."""

    def __init__(
        self,
        decayed: Sequence[Forgetful],
        mf: OnlineMF | None,
        ensemble: Ensemble,
        fast: Sequence[str] = (),
        forget: float = 0.25,
        shrink_users: float = 0.5,
        boost: float = 4.0,
        boost_events: int = 50_000,
        cooldown_events: int = 20_000,
        history: float = 1.0,
        keep_events: int = 0,
    ) -> None:
        if not 0 < forget <= 1 or not 0 <= shrink_users <= 1 or boost < 1 or not 0 <= history <= 1:
            raise ValueError("forget in (0, 1], shrink_users and history in [0, 1], boost >= 1")
        if keep_events < 0:
            raise ValueError("keep_events must be >= 0 (0: no cap)")
        self.decayed = list(decayed)
        self.mf = mf
        self.ensemble = ensemble
        self.fast = [name for name in fast if name in ensemble.priors]
        self.forget = forget
        self.shrink_users = shrink_users
        self.boost = boost
        self.boost_events = boost_events
        self.cooldown_events = cooldown_events
        self.history = history
        self.keep_events = keep_events
        self.last_action: int | None = None
        self.last_forget: int | None = None
        self.kept = 0.0  # events' worth of weight the last forgetting left (see ``learned``)
        self._boost_until: int | None = None
        self._saved_priors: dict[str, float] = {}

    def act(self, at_event: int, signal: str = "", at_time: float | None = None) -> str:
        """React to a detection on ``signal`` at log offset ``at_event`` (event time
        ``at_time``); returns a description of the action. A catalogue signal
        (``CATALOGUE_SIGNALS``) leaves the shoppers' side alone: user factors and histories; a
        shift of the category mix (``MIX_SIGNALS``) keeps the learned weights."""
        catalogue = signal.startswith(CATALOGUE_SIGNALS)
        forgets = self.forget < 1 and not signal.startswith(MIX_SIGNALS)
        cooling = self._cooling(self.last_action, at_event)
        if cooling and not (forgets and not self._cooling(self.last_forget, at_event)):
            return "none (cooldown)"
        done = []
        if forgets:
            done.append(self._forget(at_event))
        elif self.forget < 1:
            done.append("learned weights kept (category mix only)")
        if cooling:
            return "; ".join([*done, "the other moves in cooldown"])
        self.last_action = at_event
        if self.mf is not None and self.shrink_users < 1:
            if catalogue:
                done.append("user factors kept (catalogue change)")
            else:
                self.mf.shrink_users(self.shrink_users)
                done.append(f"shrink user factors x{self.shrink_users:g}")
        historic = [m for m in self.decayed if hasattr(m, "discount_history")]
        if historic and self.history < 1 and at_time is not None and not catalogue:
            for model in historic:
                model.discount_history(at_time, self.history)  # type: ignore[attr-defined]
            names = ",".join(m.name for m in historic)
            done.append(f"history before the detection x{self.history:g} ({names})")
        if self.fast and self.boost > 1:
            if self._boost_until is None:
                self._saved_priors = {n: self.ensemble.priors[n] for n in self.fast}
                for name in self.fast:
                    self.ensemble.priors[name] *= self.boost
                self.ensemble.update_weights(self.ensemble.hit_rates)
            self._boost_until = at_event + self.boost_events
            done.append(
                f"boost {','.join(self.fast)} x{self.boost:g} for {self.boost_events} events"
            )
        return "; ".join(done) or "none"

    def _cooling(self, last: int | None, at_event: int) -> bool:
        return last is not None and at_event - last < self.cooldown_events

    def _forget(self, at_event: int) -> str:
        """Scale the decayed models' weights by ``forget``, or by less after a long history
        (``keep_events``); what was done."""
        learned = self.learned(at_event)
        factor = self.forget
        if self.keep_events and learned > self.keep_events / factor:
            factor = self.keep_events / learned
        self.last_forget = at_event
        self.kept = learned * factor
        for model in self.decayed:
            model.forget(factor)
        return f"forget x{factor:.3g} ({','.join(m.name for m in self.decayed)})"

    def learned(self, at_event: int) -> float:
        """Events' worth of weight the decayed models hold at log offset ``at_event``, at most:
        the events since the start, or since the last forgetting plus what it kept (decay not
        counted)."""
        if self.last_forget is None:
            return float(at_event + 1)
        return self.kept + max(0, at_event - self.last_forget)

    def tick(self, offset: int) -> None:
        """Called as events are processed: ends a weight boost that has run its course."""
        if self._boost_until is not None and offset >= self._boost_until:
            self.ensemble.priors.update(self._saved_priors)
            self.ensemble.update_weights(self.ensemble.hit_rates)
            self._boost_until = None
            self._saved_priors = {}

    def state_dict(self) -> dict[str, np.ndarray]:
        """The running boost, the last action and forgetting (its offset, what it kept), so a
        restart carries on where it was."""
        doc = {
            "last_action": self.last_action,
            "last_forget": self.last_forget,
            "kept": self.kept,
            "boost_until": self._boost_until,
            "saved": self._saved_priors,
            "boosted": {n: self.ensemble.priors[n] for n in self._saved_priors},
        }
        return {"policy": np.frombuffer(msgspec.json.encode(doc), dtype=np.uint8)}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        if "policy" not in arrays:
            return
        doc = msgspec.json.decode(arrays["policy"].tobytes())
        self.last_action = doc["last_action"]
        self.last_forget = doc.get("last_forget")
        self.kept = float(doc.get("kept", 0.0))
        self._boost_until = doc["boost_until"]
        self._saved_priors = {n: float(v) for n, v in doc["saved"].items()}
        for name, prior in doc["boosted"].items():
            if name in self.ensemble.priors:
                self.ensemble.priors[name] = float(prior)
        self.ensemble.update_weights(self.ensemble.hit_rates)
