"""Response ids: 32 hex digits, distinct, and distinct in a forked server process too."""

from __future__ import annotations

import os
import re

from freshrec.serving.service import recommendation_id


def test_ids_are_128_random_bits_in_hex_and_do_not_repeat() -> None:
    ids = [recommendation_id() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_process_draws_other_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then exit without running pytest's teardown
        os.write(write, "".join(recommendation_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    mine = "".join(recommendation_id() for _ in range(4))
    assert len(child) == len(mine) == 128 and child != mine
