"""The batcher: per route, never over the count or byte cap, cut by linger."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from destination.delivery import Batcher, Entry
from destination.delivery.batcher import ENVELOPE_BYTES
from destination.errors import ConfigurationError

from .delivery_support import route

ROUTES = [route(instance=f"P{i}") for i in range(3)]


def entry(seq: int, size: int = 100, r: int = 0) -> Entry:
    return Entry(seq, f"e{seq}", ROUTES[r], "{}", 0.0, size=size)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 2)), max_size=300),
    st.integers(1, 50),
    st.integers(ENVELOPE_BYTES + 1, 20_000),
)
def test_every_entry_out_once_within_caps(specs, batch_size, max_bytes):
    batcher = Batcher(batch_size=batch_size, max_bytes=max_bytes, linger=10)
    out = []
    for seq, (size, r) in enumerate(specs):
        out += batcher.add(entry(seq, size, r), now=0.0)
        assert len(batcher) + sum(len(b) for b in out) == seq + 1
    out += batcher.drain()
    assert len(batcher) == 0
    assert sorted(e.seq for b in out for e in b.entries) == list(range(len(specs)))
    for batch in out:
        assert 1 <= len(batch) <= batch_size
        assert len({e.route for e in batch.entries}) == 1
        body = ENVELOPE_BYTES + sum(e.size + 1 for e in batch.entries)
        assert body == batch.size
        if len(batch) > 1:  # a single oversized item still leaves, alone
            assert body <= max_bytes
        seqs = [e.seq for e in batch.entries]
        assert seqs == sorted(seqs)


def test_cut_on_count():
    batcher = Batcher(batch_size=3, linger=10)
    assert batcher.add(entry(0), 0) == [] and batcher.add(entry(1), 0) == []
    (batch,) = batcher.add(entry(2), 0)
    assert [e.seq for e in batch.entries] == [0, 1, 2] and len(batcher) == 0


def test_cut_on_bytes_before_overflowing():
    batcher = Batcher(max_bytes=ENVELOPE_BYTES + 250, linger=10)
    assert batcher.add(entry(0, 100), 0) == []
    assert batcher.add(entry(1, 100), 0) == []
    (batch,) = batcher.add(entry(2, 100), 0)
    assert [e.seq for e in batch.entries] == [0, 1]
    assert len(batcher) == 1


def test_linger():
    batcher = Batcher(linger=1.0)
    batcher.add(entry(0), now=5.0)
    batcher.add(entry(1, r=1), now=5.5)
    assert batcher.next_deadline() == 6.0
    assert batcher.due(5.9) == []
    (batch,) = batcher.due(6.0)
    assert batch.entries[0].seq == 0 and batcher.next_deadline() == 6.5
    assert len(batcher.due(7.0)) == 1 and batcher.next_deadline() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 1001}, "between 1 and 1000"),
        ({"batch_size": 0}, "between 1 and 1000"),
        ({"max_bytes": 10}, "max_bytes"),
        ({"linger": -1}, "linger"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        Batcher(**kwargs)
