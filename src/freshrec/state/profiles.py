"""Optional user attributes (age band, gender, country, segment), used for cold start only.

Each attribute value becomes a key ``"name=value"`` in a small vocabulary; ``keys(users)`` gives
the keys of a batch of state user indices as an ``(n, 4)`` int32 array (-1 where unset), from
an array aligned with the state's users and extended only for users learned since the last call.

>>> from freshrec.state import IdMap
>>> users = IdMap(["u1", "u2"])
>>> profiles = UserProfiles(users)
>>> profiles.put(Profile("u2", country="de", segment="vip"))
>>> [profiles.vocabulary.key(int(v)) for v in profiles.keys(np.array([1]))[0] if v >= 0]
['country=DE', 'segment=vip']
>>> int(profiles.keys(np.array([0])).max())
-1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import msgspec
import numpy as np

from freshrec.events.schema import Id
from freshrec.state.arrays import grow
from freshrec.state.ids import IdMap
from freshrec.state.shopstore import ShopStore

ATTRIBUTES = ("age_band", "gender", "country", "segment")
Value = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Country = Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{2}$")]


class Profile(msgspec.Struct, forbid_unknown_fields=True):
    """What a shop may tell about a user (the body of ``PUT /v1/users/{id}``)."""

    user_id: Id
    age_band: Value | None = None
    gender: Value | None = None
    country: Country | None = None
    segment: Value | None = None

    def __post_init__(self) -> None:
        if self.country is not None:
            self.country = self.country.upper()

    def keys(self) -> list[str]:
        return [
            f"{name}={value}" for name in ATTRIBUTES if (value := getattr(self, name)) is not None
        ]


class UserProfiles:
    """Profiles by user id, persisted in the shop store, with per-state-user key arrays."""

    def __init__(
        self, state_users: IdMap | Callable[[], IdMap], store: ShopStore | None = None
    ) -> None:
        # the state's id map, or a function returning it (a snapshot restore replaces the map)
        self._users_of = state_users if callable(state_users) else (lambda: state_users)
        self._map: IdMap | None = None
        self.store = store
        self.profiles: dict[str, Profile] = {}
        self.revisions: dict[str, int] = {}  # changes per user (response caches compare it)
        self.vocabulary = IdMap()
        self._keys = np.zeros((0, len(ATTRIBUTES)), dtype=np.int32)
        self._synced = 0
        if store is not None:
            for _, doc in store.load("users"):
                self.put(msgspec.convert(doc, Profile), persist=False)
            store.subscribe("users", self.apply)

    def __len__(self) -> int:
        return len(self.profiles)

    def close(self) -> None:
        """Stop taking in the store's changes (the profiles of a dropped partition engine)."""
        if self.store is not None:
            self.store.unsubscribe("users", self.apply)

    @property
    def state_users(self) -> IdMap:
        users = self._users_of()
        if users is not self._map:  # a new map (restored snapshot): rebuild the key rows
            self._map = users
            self._synced = 0
            self._keys[:] = -1
        return users

    def get(self, user_id: str) -> Profile | None:
        return self.profiles.get(user_id)

    def put(self, profile: Profile, persist: bool = True) -> None:
        self.profiles[profile.user_id] = profile
        self.revisions[profile.user_id] = self.revisions.get(profile.user_id, 0) + 1
        u = self.state_users.get(profile.user_id)
        if u is not None and u < self._synced:
            self._keys[u] = self._row(profile)
        if persist and self.store is not None:
            self.store.put_many("users", [(profile.user_id, profile)])

    def apply(self, user_id: str, doc: object) -> None:
        """Take in a change another replica stored (``doc`` None: deleted)."""
        if doc is None:
            self.delete(user_id, persist=False)
        else:
            self.put(msgspec.convert(doc, Profile), persist=False)

    def delete(self, user_id: str, persist: bool = True) -> bool:
        found = self.profiles.pop(user_id, None) is not None
        self.revisions[user_id] = self.revisions.get(user_id, 0) + 1
        u = self.state_users.get(user_id)
        if u is not None and u < self._synced:
            self._keys[u] = -1
        if found and persist and self.store is not None:
            self.store.delete("users", user_id)
        return found

    def _row(self, profile: Profile | None) -> np.ndarray:
        row = np.full(len(ATTRIBUTES), -1, dtype=np.int32)
        if profile is not None:
            for a, name in enumerate(ATTRIBUTES):
                value = getattr(profile, name)
                if value is not None:
                    row[a] = self.vocabulary.add(f"{name}={value}")
        return row

    def keys(self, users: np.ndarray) -> np.ndarray:
        """Vocabulary ids of the attribute keys of state users ``users``, shape (n, 4)."""
        n = len(self.state_users)
        if n > self._synced:
            self._keys = grow(self._keys, n, fill=-1)
            if n - self._synced > len(self.profiles):  # fewer profiles than new users
                found = self.state_users.indices(list(self.profiles), add=False)
                for u, profile in zip(found.tolist(), self.profiles.values(), strict=True):
                    if u >= self._synced:
                        self._keys[u] = self._row(profile)
            else:
                keys = self.state_users.keys()
                for u in range(self._synced, n):  # only users new since the last call
                    profile = self.profiles.get(keys[u])
                    if profile is not None:
                        self._keys[u] = self._row(profile)
            self._synced = n
        return self._keys[users]

    def keys_of(self, user_id: str) -> list[int]:
        """Vocabulary ids of one user's attribute keys (works for users never seen in events)."""
        row = self._row(self.profiles.get(user_id))
        return row[row >= 0].tolist()
