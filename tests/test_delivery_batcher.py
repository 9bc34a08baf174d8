"""The batcher: whole chunks per route, never over the count or byte cap, cut by linger."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from destination.delivery import Batcher, Chunk
from destination.delivery.batcher import ENVELOPE_BYTES
from destination.errors import ConfigurationError

from .delivery_support import route

ROUTES = [route(instance=f"P{i}") for i in range(3)]


def chunk(cid: int, size: int = 100, r: int = 0, n: int = 1) -> Chunk:
    return Chunk(cid, ROUTES[r], ["{}"] * n, [f"e{cid}.{i}" for i in range(n)], 0.0, size=size)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 2), st.integers(1, 50)), max_size=300),
    st.integers(1, 50),
    st.integers(ENVELOPE_BYTES + 1, 20_000),
)
def test_every_chunk_out_once_within_caps(specs, batch_size, max_bytes):
    batcher = Batcher(batch_size=batch_size, max_bytes=max_bytes, linger=10)
    out = []
    total = 0
    for cid, (size, r, n) in enumerate(specs):
        n = min(n, batch_size)  # the engine never adds a chunk larger than a request
        out += batcher.add(chunk(cid, size, r, n), now=0.0)
        total += n
        assert len(batcher) + sum(len(b) for b in out) == total
    out += batcher.drain()
    assert len(batcher) == 0
    assert sorted(c.id for b in out for c in b.chunks) == list(range(len(specs)))
    for batch in out:
        assert 1 <= len(batch) <= batch_size
        assert len(batch) == sum(len(c) for c in batch.chunks) == len(batch.items)
        assert len({c.route for c in batch.chunks}) == 1
        body = ENVELOPE_BYTES + sum(c.size + 1 for c in batch.chunks)
        assert body == batch.size
        if len(batch.chunks) > 1:  # a single oversized chunk still leaves, alone
            assert body <= max_bytes
        ids = [c.id for c in batch.chunks]
        assert ids == sorted(ids)


def test_cut_on_count():
    batcher = Batcher(batch_size=3, linger=10)
    assert batcher.add(chunk(0), 0) == [] and batcher.add(chunk(1), 0) == []
    (batch,) = batcher.add(chunk(2), 0)
    assert [c.id for c in batch.chunks] == [0, 1, 2] and len(batcher) == 0


def test_chunks_fill_a_batch_together():
    batcher = Batcher(batch_size=200, linger=10)
    assert batcher.add(chunk(0, n=100), 0) == []
    (batch,) = batcher.add(chunk(1, n=100), 0)
    assert len(batch) == 200 and len(batch.items) == 200


def test_a_full_chunk_leaves_alone_and_the_open_batch_keeps_filling():
    batcher = Batcher(batch_size=200, linger=10)
    assert batcher.add(chunk(0, n=100), 0) == []
    (alone,) = batcher.add(chunk(1, n=200), 0)
    assert [c.id for c in alone.chunks] == [1]
    (batch,) = batcher.add(chunk(2, n=100), 0)
    assert [c.id for c in batch.chunks] == [0, 2]


def test_a_chunk_that_does_not_fit_closes_the_open_batch():
    batcher = Batcher(batch_size=200, linger=10)
    assert batcher.add(chunk(0, n=150), 0) == []
    (batch,) = batcher.add(chunk(1, n=100), 0)
    assert [c.id for c in batch.chunks] == [0] and len(batcher) == 100


def test_cut_on_bytes_before_overflowing():
    batcher = Batcher(max_bytes=ENVELOPE_BYTES + 250, linger=10)
    assert batcher.add(chunk(0, 100), 0) == []
    assert batcher.add(chunk(1, 100), 0) == []
    (batch,) = batcher.add(chunk(2, 100), 0)
    assert [c.id for c in batch.chunks] == [0, 1]
    assert len(batcher) == 1


def test_linger():
    batcher = Batcher(linger=1.0)
    batcher.add(chunk(0), now=5.0)
    batcher.add(chunk(1, r=1), now=5.5)
    assert batcher.next_deadline() == 6.0
    assert batcher.due(5.9) == []
    (batch,) = batcher.due(6.0)
    assert batch.chunks[0].id == 0 and batcher.next_deadline() == 6.5
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
