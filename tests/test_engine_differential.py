"""Differential and state tests: the Numba engine against the reference.

Random message streams (hypothesis, and a few long seeded ones) are cut into
random batches and fed to both engines; every batch must give identical
report arrays and identical ``resting_orders()``, and the Numba book must keep
its invariants. Ids come from a small space, prices from a narrow band (so
orders cross), a third of the messages aim at a resting order (CANCEL/MODIFY
it, queue behind it, cross it from its own account), and one in eight carries
an invalid code or value. The rest of the file covers what only the Numba
engine has: snapshot/restore, the state hash, and pool growth.
"""

import numpy as np
import pytest
from book_invariants import Ledger, check_invariants
from engine_fixtures import BOOK_FIELDS, assert_same_reports, format_message, tops_from_resting
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from reference_book import ReferenceEngine

from engine import MatchingEngine
from engine.messages import MESSAGE_DTYPE, NO_PRICE, Action, OrderType, Reason, ReportKind, Side

N_SYMBOLS = 3
STP_MODES = ["none", "cancel-newest"]
# Value pools for random messages; repeats weight the common values. The
# first entry is where hypothesis shrinks to, so it is a valid, plain value.
ACTIONS = [Action.NEW] * 6 + [Action.CANCEL, Action.MODIFY, Action.MODIFY]
SYMBOLS = list(range(N_SYMBOLS))
IDS = list(range(1, 41))  # small: random NEWs sometimes duplicate, CANCELs sometimes hit
ACCOUNTS = [1, 2, 3]
SIDES = [Side.BUY, Side.SELL]
TYPES = [OrderType.LIMIT] * 6 + [OrderType.MARKET, OrderType.IOC, OrderType.FOK]
BID_PRICES = list(range(96, 101))
ASK_OFFSET = 3  # asks sit this much higher than bids: books build up, and still cross
QTYS = list(range(1, 9))
#: About one message in eight gets one field replaced by a value from here.
MANGLE = [False] * 7 + [True]
BAD_VALUES = {
    "action": [0, 4, -1, 127],
    "symbol": [-1, N_SYMBOLS, 1 << 30],
    "order_id": [999, 0, -7],  # never resting: valid for NEW, unknown otherwise
    "account": [0, -5],  # accounts are opaque: never rejected
    "side": [0, 3, -1],
    "type": [0, 5, -1],
    "price": [NO_PRICE, 0, -1],
    "qty": [0, -1, -100],
}
#: Whether a message is aimed at a resting order (about a third are).
AIMED = [False, False, True]
#: (orders, levels) initial pool sizes: default, and tiny so growth runs mid-stream.
CAPACITIES = [(1024, 256), (2, 1)]

_FIELDS = ("action", "symbol", "order_id", "account", "side", "type", "price", "qty")


def make_batch(rows, first_seq: int) -> np.ndarray:
    """Messages from ``(action, symbol, order_id, account, side, type, price, qty)`` rows."""
    batch = np.zeros(len(rows), dtype=MESSAGE_DTYPE)
    batch["seq"] = np.arange(first_seq, first_seq + len(rows))
    for i, name in enumerate(_FIELDS):
        batch[name] = [row[i] for row in rows]
    return batch


#: Random picks (bytes) one message may consume: the most any path below uses.
PICKS = 13


class StreamBuilder:
    """Turns rows of random picks into messages, aiming some at resting orders.

    Purely random messages rarely hit the cases that matter most (a MODIFY
    that keeps exactly the remaining qty, a same-account order that crosses),
    so about a third of the messages are built from an order that rests in a
    shadow reference book: a CANCEL or MODIFY of it, a duplicate NEW, a NEW
    joining its level, or a crossing NEW from its own account. Each message consumes one row of
    ``PICKS`` bytes, each picking ``pool[x % len(pool)]``; hypothesis shrinks
    them toward 0, that is toward the first (plainest) pool entries.
    """

    def __init__(self, stp: str):
        self.shadow = ReferenceEngine(N_SYMBOLS, stp=stp)
        self.seq = 0
        self._picks = iter(())

    def build(self, batches_of_picks) -> list[np.ndarray]:
        """One batch of messages per list of pick rows, with consecutive seqs."""
        batches = []
        for rows in batches_of_picks:
            first = self.seq + 1
            batches.append(make_batch([self._row(picks) for picks in rows], first))
        return batches

    def _choose(self, pool):
        return pool[next(self._picks) % len(pool)]

    def _row(self, picks) -> tuple:
        self._picks = iter(picks)
        if self.shadow.n_resting and self._choose(AIMED):
            resting = self.shadow.resting_orders()
            row = self._aimed(resting[self._choose(range(len(resting)))])
        else:
            row = self._random()
        self.seq += 1
        self.shadow.process(make_batch([row], self.seq))
        return row

    def _random(self) -> tuple:
        c = self._choose
        action, side = c(ACTIONS), c(SIDES)
        price = c(BID_PRICES) + (ASK_OFFSET if side == Side.SELL else 0)
        if action == Action.MODIFY:
            price = c([price, NO_PRICE])
        row = [action, c(SYMBOLS), c(IDS), c(ACCOUNTS), side, c(TYPES), price, c(QTYS)]
        if c(MANGLE):
            field = c(_FIELDS)
            row[_FIELDS.index(field)] = c(BAD_VALUES[field])
        return tuple(row)

    def _aimed(self, r) -> tuple:
        sym, side, oid, acct, price, qty = (int(r[f]) for f in BOOK_FIELDS)
        c = self._choose
        kind = c(["modify", "modify", "modify", "join", "cross", "cancel", "duplicate"])
        # Mostly the order's own account; a quarter of the time another one (NOT_OWNER).
        sender = c([acct, acct, acct, acct % len(ACCOUNTS) + 1])
        if kind == "modify":
            new_price = c([NO_PRICE, price, price, price - 1, price + 1, price - 3, price + 3, 0])
            new_qty = c([qty, qty, qty - 1, qty + 1, qty + 4, 0])
            return (Action.MODIFY, sym, oid, sender, c(SIDES), 0, new_price, new_qty)
        if kind == "cancel":
            return (Action.CANCEL, sym, oid, sender, c(SIDES), 0, NO_PRICE, 0)
        if kind == "duplicate":
            return (Action.NEW, sym, oid, acct, side, OrderType.LIMIT, price, qty)
        if kind == "join":  # queue up behind it, so priority is visible
            return (Action.NEW, sym, c(IDS), c(ACCOUNTS), side, OrderType.LIMIT, price, c(QTYS))
        other = Side.SELL if side == Side.BUY else Side.BUY
        otype = c([OrderType.LIMIT, OrderType.MARKET, OrderType.IOC, OrderType.FOK])
        return (Action.NEW, sym, c(IDS), acct, other, otype, price, c(QTYS))


_pick_row = st.binary(min_size=PICKS, max_size=PICKS)


def stream_picks(max_batches: int = 12):
    """Pick rows, grouped into batches of 1..25 messages.

    At least three batches: that puts the mean stream near 50 messages
    (hypothesis keeps lists near ``min_size``) while the shrinker can still
    delete any message, or any batch beyond the third.
    """
    return st.lists(st.lists(_pick_row, min_size=1, max_size=25), min_size=3, max_size=max_batches)


def build_stream(stp: str, picks) -> list[np.ndarray]:
    """The batches for ``stream_picks``; hypothesis prints them readably on failure."""
    batches = StreamBuilder(stp).build(picks)
    note("stream:\n" + "\n".join(format_message(m) for b in batches for m in b))
    return batches


def random_batches(seed: int, stp: str, n: int) -> list[np.ndarray]:
    """A long seeded stream of about ``n`` messages in batches of 1..200."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, 256, (n, PICKS)).tolist()
    cuts = np.cumsum(rng.integers(1, 201, n))
    cuts = [0, *cuts[cuts < n].tolist(), n]
    return StreamBuilder(stp).build(picks[a:b] for a, b in zip(cuts, cuts[1:], strict=False))


def assert_same_books(actual: np.ndarray, expected: np.ndarray, context: str = "") -> None:
    if actual.dtype == expected.dtype and np.array_equal(actual, expected):
        return
    a = book_rows_of(actual)
    e = book_rows_of(expected)
    lines = [context, "resting orders differ (symbol, side, id, account, price, qty):"]
    if actual.dtype != expected.dtype:
        lines.append(f"  dtypes: numba {actual.dtype} / reference {expected.dtype}")
    lines += [f"  numba     {row}" for row in a if row not in e]
    lines += [f"  reference {row}" for row in e if row not in a]
    if len(lines) == 2:
        lines.append(f"  same orders, different order:\n  numba     {a}\n  reference {e}")
    raise AssertionError("\n".join(lines))


def book_rows_of(rows: np.ndarray) -> list[tuple]:
    return [tuple(int(v) for v in r) for r in rows]


def run_both(batches, stp: str, capacity=CAPACITIES[0]) -> tuple[MatchingEngine, Ledger]:
    """Feed both engines batch by batch; assert equality and invariants after each."""
    ref = ReferenceEngine(N_SYMBOLS, stp=stp)
    fast = MatchingEngine(N_SYMBOLS, stp=stp, orders=capacity[0], levels=capacity[1])
    ledger = Ledger()
    for batch in batches:
        got, want = fast.process(batch), ref.process(batch)
        context = "batch:\n" + "\n".join("  " + format_message(m) for m in batch)
        assert_same_reports(got, want, context)
        assert_same_books(fast.resting_orders(), ref.resting_orders(), context)
        assert fast.n_resting == ref.n_resting
        tops, want = fast.tops(SYMBOLS), tops_from_resting(ref.resting_orders(), SYMBOLS)
        assert (tops["seq"] == fast.messages).all()
        want["seq"] = fast.messages
        assert tops.tolist() == want.tolist(), context
        ledger.consume(batch, got)
        check_invariants(fast, ledger)
    return fast, ledger


# -- differential ---------------------------------------------------------------


@pytest.mark.parametrize("stp", STP_MODES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=stream_picks(), capacity=st.sampled_from(CAPACITIES))
def test_numba_matches_reference(stp, picks, capacity):
    run_both(build_stream(stp, picks), stp, capacity)


@pytest.mark.parametrize("stp", STP_MODES)
@pytest.mark.parametrize("seed", range(3))
def test_long_random_streams_match_reference(stp, seed):
    batches = random_batches(seed, stp, 4000)
    _, ledger = run_both(batches, stp, capacity=(8, 2))
    # The stream must have exercised the interesting paths, or it proves little.
    assert ledger.filled > 0 and ledger.canceled > 0 and ledger.expired > 0
    assert ledger.modify_delta != 0 and ledger.clock > 500


def spread_prices(batches, scale: int, drift: int, outlier_every: int) -> list[np.ndarray]:
    """The same streams over prices far wider than the engine's price window.

    Prices are stretched by ``scale``, the whole band walks by ``drift`` ticks
    every 50 messages (up, then back down), and every ``outlier_every``-th
    priced message lands 10**6 ticks away: levels then live inside the window,
    outside it, and across its re-centring.
    """
    out, k = [], 0
    for batch in batches:
        batch = batch.copy()
        for m in batch:
            k += 1
            if m["price"] > 0:
                step = k // 50
                walk = step if step < 40 else 80 - step
                far = 10**6 if k % outlier_every == 0 else 0
                m["price"] = m["price"] * scale + walk * drift + far
        out.append(batch)
    return out


@pytest.mark.parametrize("stp", STP_MODES)
@pytest.mark.parametrize(("scale", "drift"), [(1, 300), (37, 25), (400, 0)])
def test_wide_and_drifting_prices_match_reference(stp, scale, drift):
    batches = spread_prices(random_batches(11, stp, 4000), scale, drift, outlier_every=97)
    assert max(int(b["price"].max()) for b in batches) > 10**6  # outliers are in
    _, ledger = run_both(batches, stp, capacity=(8, 2))
    assert ledger.filled > 0 and ledger.modify_delta != 0


def test_streams_exercise_every_report_kind():
    """The pools above reach every report kind and every engine reject reason."""
    kinds, reasons = set(), set()
    for stp in STP_MODES:
        ref = ReferenceEngine(N_SYMBOLS, stp=stp)
        for batch in random_batches(7, stp, 4000):
            reports = ref.process(batch)
            kinds |= set(reports["kind"].tolist())
            reasons |= set(reports["reason"].tolist())
    assert kinds == set(range(ReportKind.ACK, ReportKind.MODIFIED + 1))
    assert reasons == set(range(0, 10)) | {Reason.NOT_OWNER}


# -- snapshot / restore / hash ----------------------------------------------------------


@pytest.mark.parametrize("stp", STP_MODES)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=stream_picks(), at=st.integers(0, 12), noise=stream_picks(max_batches=3))
def test_snapshot_restore_continues_identically(stp, picks, at, noise):
    batches = build_stream(stp, picks)
    at = min(at, len(batches))
    noise = build_stream(stp, noise)
    whole = MatchingEngine(N_SYMBOLS, stp=stp)
    first = MatchingEngine(N_SYMBOLS, stp=stp)
    for batch in batches[:at]:
        whole.process(batch)
        first.process(batch)
    data = first.snapshot()
    assert isinstance(data, bytes)

    # Restore into an engine that already has a different history: it is replaced.
    resumed = MatchingEngine(N_SYMBOLS, stp=stp, orders=2, levels=1)
    for batch in noise:
        resumed.process(batch)
    resumed.restore(data)
    assert resumed.state_hash() == first.state_hash()
    assert_same_books(resumed.resting_orders(), first.resting_orders())

    for batch in batches[at:]:
        assert_same_reports(resumed.process(batch), whole.process(batch))
    assert_same_books(resumed.resting_orders(), whole.resting_orders())
    assert resumed.n_resting == whole.n_resting
    assert resumed.state_hash() == whole.state_hash()


@pytest.mark.parametrize("stp", STP_MODES)
def test_replay_is_deterministic(stp):
    batches = random_batches(11, stp, 3000)
    runs = []
    for _ in range(2):
        engine = MatchingEngine(N_SYMBOLS, stp=stp)
        reports = [engine.process(b) for b in batches]
        runs.append((engine.state_hash(), np.concatenate(reports)))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])
    assert MatchingEngine(N_SYMBOLS, stp=stp).state_hash() != runs[0][0]
    other = MatchingEngine(N_SYMBOLS, stp=stp)
    for batch in random_batches(12, stp, 3000):
        other.process(batch)
    assert other.state_hash() != runs[0][0]


def test_state_hash_tells_books_apart():
    def hash_after(rows):
        engine = MatchingEngine(2)
        engine.process(make_batch(rows, first_seq=1))
        return engine.state_hash()

    buy = Action.NEW, 0, 1, 1, Side.BUY, OrderType.LIMIT, 100, 5
    other = Action.NEW, 0, 2, 1, Side.BUY, OrderType.LIMIT, 100, 5
    base = hash_after([buy, other])
    assert hash_after([buy, other]) == base
    assert hash_after([buy]) != base  # one order fewer
    assert hash_after([other, buy]) != base  # same orders, other time priority
    assert hash_after([buy, other[:-1] + (4,)]) != base  # one qty differs
    assert hash_after([buy, (Action.NEW, 1, *other[2:])]) != base  # other symbol


# -- capacity growth -------------------------------------------------------------------


def test_pools_grow_without_losing_orders():
    """100k resting orders into an engine sized for 16: none lost, same as the reference."""
    rng = np.random.default_rng(5)
    n, n_symbols = 100_000, 8
    batch = np.zeros(n, dtype=MESSAGE_DTYPE)
    batch["seq"] = np.arange(1, n + 1)
    batch["action"] = Action.NEW
    batch["type"] = OrderType.LIMIT
    batch["symbol"] = rng.integers(0, n_symbols, n)
    batch["order_id"] = rng.permutation(n) + 1  # random ids spread over the hash table
    batch["account"] = rng.integers(1, 50, n)
    batch["side"] = rng.choice([Side.BUY, Side.SELL], n)
    # Bids in [1000, 3000), asks in [3000, 5000): thousands of levels, never crossing.
    offset = rng.integers(0, 2000, n)
    batch["price"] = np.where(batch["side"] == Side.BUY, 1000 + offset, 3000 + offset)
    batch["qty"] = rng.integers(1, 100, n)

    fast = MatchingEngine(n_symbols, orders=16, levels=4)
    small = fast.memory_bytes()
    ref = ReferenceEngine(n_symbols)
    for chunk in np.array_split(batch, 10):
        assert_same_reports(fast.process(chunk), ref.process(chunk))
    assert fast.n_resting == ref.n_resting == n
    # At least id, account, price and qty (int64 each) per resting order.
    assert fast.memory_bytes() >= max(small, n * 32)
    assert_same_books(fast.resting_orders(), ref.resting_orders())
    assert int(fast.resting_orders()["qty"].sum()) == int(batch["qty"].sum())

    # Then trade and cancel through the grown pools: sweeps of many levels,
    # cancels of every third order, and a snapshot round-trip of the big book.
    later = []
    for sym in range(n_symbols):
        later.append(
            (Action.NEW, sym, n + 1 + sym, 99, Side.BUY, OrderType.MARKET, NO_PRICE, 40_000)
        )
        later.append((Action.NEW, sym, n + 101 + sym, 99, Side.SELL, OrderType.IOC, 1500, 40_000))
    for m in batch[::3]:  # some were swept just before: those are UNKNOWN_ORDER
        owner = int(m["account"])
        later.append(
            (Action.CANCEL, int(m["symbol"]), int(m["order_id"]), owner, 0, 0, NO_PRICE, 0)
        )
    later = make_batch(later, first_seq=n + 1)
    got = fast.process(later)
    assert_same_reports(got, ref.process(later))
    assert (got["kind"] == ReportKind.FILL).sum() > 1000
    assert (got["kind"] == ReportKind.CANCELED).sum() > n // 4
    assert_same_books(fast.resting_orders(), ref.resting_orders())

    clone = MatchingEngine(1)  # restore replaces everything, the symbol count too
    clone.restore(fast.snapshot())
    assert clone.state_hash() == fast.state_hash()
    assert clone.n_resting == ref.n_resting
    sweep = make_batch(
        [
            (Action.NEW, sym, n + 201 + sym, 7, Side.SELL, OrderType.MARKET, NO_PRICE, 10**6)
            for sym in range(n_symbols)
        ],
        first_seq=2 * n,
    )
    assert_same_reports(clone.process(sweep), ref.process(sweep))
    assert_same_books(clone.resting_orders(), ref.resting_orders())
