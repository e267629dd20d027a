"""Per-account pre-trade risk limits, kept by the backend that owns the accounts.

Checks, in order, for each message: a known account and symbol; then for NEW
orders the largest order quantity, the most open orders, the largest
position in the worst case (the filled position plus everything still open
on the order's side, this order included, as if all of it filled) and the
highest order rate (orders per second, in one-second windows). Each breach
is a REJECT with its own reason. Open orders, open quantities per side and
positions are brought up to date from the engine's reports (``leaves`` tells
whether an order still rests; a MODIFIED report carries the quantity it
replaced). A MODIFY is not checked against the position limit before it is
sent (the backend does not keep each order's side and quantity); what it
changes counts from its report on.

Accounts are ``1..n_accounts``; state is dense per account and symbol.
"""

from typing import NamedTuple

import numpy as np

from engine.jit import WARM_UP_SIZES, njit, read_only
from engine.messages import Action, Reason, ReportKind, Side

# Plain ints, which Numba folds into the kernels as constants.
ACK, FILL, REJECT = ReportKind.ACK, ReportKind.FILL, ReportKind.REJECT
CANCELED, EXPIRED, MODIFIED = ReportKind.CANCELED, ReportKind.EXPIRED, ReportKind.MODIFIED
NEW, BUY, SELL = Action.NEW, Side.BUY, Side.SELL

__all__ = ["RiskLimits", "RiskBook"]

_OK = 0
_R_ACCOUNT = int(Reason.BAD_ACCOUNT)
_R_SYMBOL = int(Reason.BAD_SYMBOL)
_R_QTY = int(Reason.MAX_ORDER_QTY)
_R_OPEN = int(Reason.MAX_OPEN_ORDERS)
_R_POSITION = int(Reason.MAX_POSITION)
_R_RATE = int(Reason.MAX_ORDER_RATE)


class RiskLimits(NamedTuple):
    max_order_qty: int = 1_000_000
    max_open_orders: int = 1_000_000
    max_position: int = 1_000_000_000
    max_order_rate: float = 1e9


@njit
def _pre_trade(
    action,
    account,
    symbol,
    side,
    qty,
    n_symbols,
    limits,
    open_orders,
    open_qty,
    position,
    window,
    window_count,
    now_s,
    reasons,
):
    max_qty, max_open, max_pos, max_rate = limits
    for i in range(action.shape[0]):
        a = account[i]
        s = symbol[i]
        if a < 1 or a >= open_orders.shape[0]:
            reasons[i] = _R_ACCOUNT
            continue
        if s < 0 or s >= n_symbols:
            reasons[i] = _R_SYMBOL
            continue
        if action[i] != NEW:
            reasons[i] = _OK
            continue
        if window[a] != now_s:
            window[a] = now_s
            window_count[a] = 0
        # The worst case on the order's side: all of it and all already open there fill.
        sided = (side[i] == BUY or side[i] == SELL) and qty[i] > 0
        k = side[i] - 1 if sided else 0
        worst = 0
        if sided:
            worst = open_qty[a, s, k] + qty[i] + (position[a, s] if k == 0 else -position[a, s])
        if qty[i] > max_qty:
            reasons[i] = _R_QTY
        elif open_orders[a] + 1 > max_open:
            reasons[i] = _R_OPEN
        elif worst > max_pos:
            reasons[i] = _R_POSITION
        elif window_count[a] + 1 > max_rate:
            reasons[i] = _R_RATE
        else:
            reasons[i] = _OK
            window_count[a] += 1
            # Counted open until the reports say it does not rest.
            open_orders[a] += 1
            if sided:
                open_qty[a, s, k] += qty[i]


@njit
def _post_trade(
    msg_seq,
    msg_action,
    msg_account,
    rep_seq,
    rep_kind,
    rep_account,
    rep_side,
    rep_qty,
    rep_leaves,
    rep_maker_account,
    rep_maker_leaves,
    rep_symbol,
    open_orders,
    open_qty,
    position,
    owner,
    n_owners,
):
    """Apply one batch's reports, message by message (reports of a message are contiguous).

    ``open_qty[a, s, side - 1]`` follows every quantity that comes and goes: a
    NEW's was added when it passed the check; fills move quantity from open to
    position (both sides, the maker's if this backend owns it); cancels and
    expiries remove what they report; a MODIFIED swaps the old quantity for
    the new; an engine REJECT of a NEW takes back what the check added.
    """
    n_acct = open_orders.shape[0]
    r = 0
    n_rep = rep_seq.shape[0]
    for i in range(msg_seq.shape[0]):
        first = r
        while r < n_rep and rep_seq[r] == msg_seq[i]:
            r += 1
        if r == first:
            continue
        for k in range(first, r):
            kind, a, s, side = rep_kind[k], rep_account[k], rep_symbol[k], rep_side[k]
            sided = (side == BUY or side == SELL) and 0 < a < n_acct
            if kind == FILL:
                signed = rep_qty[k] if side == BUY else -rep_qty[k]
                position[a, s] += signed
                if sided:
                    open_qty[a, s, side - 1] -= rep_qty[k]
                m = rep_maker_account[k]
                # The maker's backend settles it, here if this one owns the
                # account (``m % n_owners``: ``routing.backend_of_account``).
                if 0 < m < n_acct and m % n_owners == owner:
                    position[m, s] -= signed
                    open_qty[m, s, 2 - side] -= rep_qty[k]  # the maker's side: the other one
                    if rep_maker_leaves[k] == 0:
                        open_orders[m] -= 1
            elif not sided:
                continue
            elif kind == CANCELED or kind == EXPIRED:
                open_qty[a, s, side - 1] -= rep_qty[k]
            elif kind == MODIFIED:
                open_qty[a, s, side - 1] += rep_qty[k] - rep_maker_leaves[k]
            elif kind == REJECT and msg_action[i] == NEW and rep_qty[k] > 0:
                open_qty[a, s, side - 1] -= rep_qty[k]  # the check had counted it
        # A NEW was counted open when it passed the check; an accepted CANCEL
        # or MODIFY was about an order that rested. Reports name the order's
        # own account, which is the sender's (the engine refuses anyone else's).
        last = rep_kind[r - 1]
        rests_after = (last == ACK or last == FILL or last == MODIFIED) and rep_leaves[r - 1] > 0
        accepted = rep_kind[first] != REJECT
        rested_before = 1 if msg_action[i] == NEW or accepted else 0
        a = rep_account[first] if accepted else msg_account[i]
        if 0 < a < n_acct:
            open_orders[a] += (1 if rests_after else 0) - rested_before


@njit
def _maker_fills(
    rep_kind,
    rep_side,
    rep_qty,
    rep_maker_account,
    rep_maker_leaves,
    rep_symbol,
    open_orders,
    open_qty,
    position,
):
    """Fills of other backends' takers against this backend's resting orders."""
    n_acct = open_orders.shape[0]
    for k in range(rep_kind.shape[0]):
        m = rep_maker_account[k]
        if rep_kind[k] != FILL or not 0 < m < n_acct:
            continue
        signed = rep_qty[k] if rep_side[k] == BUY else -rep_qty[k]
        position[m, rep_symbol[k]] -= signed
        open_qty[m, rep_symbol[k], 2 - rep_side[k]] -= rep_qty[k]
        if rep_maker_leaves[k] == 0:
            open_orders[m] -= 1


class RiskBook:
    """Risk state of the accounts owned by one backend."""

    def __init__(
        self,
        limits: RiskLimits,
        n_accounts: int,
        n_symbols: int,
        owner: tuple[int, int] = (0, 1),
    ):
        """``owner``: (this backend, number of backends); it keeps the accounts
        ``routing.backend_of_account`` gives it, and so the makers it settles."""
        self.limits = limits
        self.n_symbols = n_symbols
        self._limits = (
            int(limits.max_order_qty),
            int(limits.max_open_orders),
            int(limits.max_position),
            float(limits.max_order_rate),
        )
        self.open_orders = np.zeros(n_accounts + 1, dtype=np.int64)
        #: per account and symbol, the quantity open on each side (buy, sell)
        self.open_qty = np.zeros((n_accounts + 1, n_symbols, 2), dtype=np.int64)
        self.position = np.zeros((n_accounts + 1, n_symbols), dtype=np.int64)
        self._window = np.full(n_accounts + 1, -1, dtype=np.int64)
        self._window_count = np.zeros(n_accounts + 1, dtype=np.int64)
        self._owner = owner

    def check(self, messages: np.ndarray, now_s: int) -> np.ndarray:
        """Reject reason per message (0 = passes); counts passed NEW orders as open."""
        reasons = np.empty(len(messages), dtype=np.int8)
        m = _fields(messages, ("action", "account", "symbol", "side", "qty"))
        _pre_trade(
            *m,
            self.n_symbols,
            self._limits,
            self.open_orders,
            self.open_qty,
            self.position,
            self._window,
            self._window_count,
            now_s,
            reasons,
        )
        return reasons

    def apply(self, messages: np.ndarray, reports: np.ndarray) -> None:
        """Bring open orders and positions up to date from a batch's reports."""
        _post_trade(
            *_fields(messages, ("seq", "action", "account")),
            *_fields(reports, _REPORT_FIELDS),
            self.open_orders,
            self.open_qty,
            self.position,
            *self._owner,
        )

    def apply_maker_fills(self, fills: np.ndarray) -> None:
        """Fills against this backend's resting orders, taken by other backends' clients."""
        if len(fills):
            _maker_fills(
                *_fields(fills, _MAKER_FIELDS),
                self.open_orders,
                self.open_qty,
                self.position,
            )

    def release(self, messages: np.ndarray) -> None:
        """Take back what :meth:`check` counted for NEW orders that got no reports."""
        new = messages[messages["action"] == NEW]
        a, s, side, qty = (new[f] for f in ("account", "symbol", "side", "qty"))
        known = (a >= 1) & (a < len(self.open_orders)) & (s >= 0) & (s < self.n_symbols)
        np.subtract.at(self.open_orders, a[known], 1)
        sided = known & ((side == BUY) | (side == SELL)) & (qty > 0)
        np.subtract.at(self.open_qty, (a[sided], s[sided], side[sided] - 1), qty[sided])

    def warm_up(self, message_dtype, report_dtype) -> None:
        """Compile (or load) the three kernels for every layout a batch can have.

        The batches are all zeros: account 0 is unknown and kind 0 is no
        report, so the state does not change. :meth:`apply` takes two batches
        whose lengths (so layouts) vary apart, one message with many reports
        or the other way round, so it is warmed up on every pair of them.
        """
        for n in WARM_UP_SIZES:
            messages = np.zeros(n, message_dtype)
            self.check(messages, 0)
            self.apply_maker_fills(np.zeros(n, report_dtype))
            for n_reports in WARM_UP_SIZES:
                self.apply(messages, np.zeros(n_reports, report_dtype))


_REPORT_FIELDS = (
    "seq",
    "kind",
    "account",
    "side",
    "qty",
    "leaves",
    "maker_account",
    "maker_leaves",
    "symbol",
)
_MAKER_FIELDS = ("kind", "side", "qty", "maker_account", "maker_leaves", "symbol")


def _fields(batch: np.ndarray, names: tuple) -> list[np.ndarray]:
    """Read-only views of ``batch``'s fields, in order (one kernel signature per layout)."""
    return [read_only(batch[name]) for name in names]
