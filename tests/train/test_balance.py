"""The balance rule, driven through every transition with scripted losses."""

from __future__ import annotations

import math

import pytest

from e2e_recon.train.balance import BalanceState, balance_ratio, update_balance

BOTH = BalanceState(True, True)
ONLY_G = BalanceState(train_d=False, train_g=True)
ONLY_D = BalanceState(train_d=True, train_g=False)


def step(state: BalanceState, d_real: float, d_fake: float, g_adv: float) -> BalanceState:
    return update_balance(state, balance_ratio(d_real, d_fake, g_adv))


def test_ratio_from_unweighted_losses() -> None:
    assert balance_ratio(0.3, 0.2, 1.0) == pytest.approx(0.5)
    assert balance_ratio(1.0, 0.0, 0.0) == math.inf


@pytest.mark.parametrize(
    ("before", "losses", "after"),
    [
        # rule 1: r < 0.1 with D training -> stop D, train G
        (BOTH, (0.02, 0.03, 1.0), ONLY_G),
        (ONLY_D, (0.02, 0.03, 1.0), ONLY_G),
        # rule 1 does not fire when D is already stopped
        (ONLY_G, (0.02, 0.03, 1.0), ONLY_G),
        # between the thresholds nothing changes
        (BOTH, (0.15, 0.15, 1.0), BOTH),
        (ONLY_G, (0.15, 0.15, 1.0), ONLY_G),
        (ONLY_D, (1.0, 1.0, 1.0), ONLY_D),
        # rule 2: r > 0.5 with D stopped -> train both
        (ONLY_G, (0.4, 0.4, 1.0), BOTH),
        # rule 3: r > 10 with G training -> stop G, train D
        (BOTH, (6.0, 6.0, 1.0), ONLY_D),
        # rules 2 then 3 in one call: D stopped, r = 12 -> both -> only D
        (ONLY_G, (6.0, 6.0, 1.0), ONLY_D),
        # rule 3 does not fire when G is already stopped
        (ONLY_D, (6.0, 6.0, 1.0), ONLY_D),
        # exactly on a threshold: strict inequalities, no change
        (BOTH, (0.05, 0.05, 1.0), BOTH),
        (ONLY_G, (0.25, 0.25, 1.0), ONLY_G),
        (BOTH, (5.0, 5.0, 1.0), BOTH),
    ],
)
def test_transitions(
    before: BalanceState, losses: tuple[float, float, float], after: BalanceState
) -> None:
    assert step(before, *losses) == after


def test_scripted_sequence() -> None:
    script = [  # (d_real, d_fake, g_adv) -> expected state after
        ((0.5, 0.5, 1.0), BOTH),  # r = 1
        ((0.01, 0.01, 1.0), ONLY_G),  # D wins: pause D
        ((0.1, 0.1, 1.0), ONLY_G),  # r = 0.2: stay
        ((0.3, 0.3, 1.0), BOTH),  # r = 0.6: resume D
        ((8.0, 8.0, 1.0), ONLY_D),  # G wins: pause G
        ((2.0, 2.0, 1.0), ONLY_D),  # r = 4: stay
        ((0.01, 0.01, 1.0), ONLY_G),  # r = 0.02: D stops, G trains again
    ]
    state = BalanceState()
    for losses, expected in script:
        state = step(state, *losses)
        assert state == expected


def test_state_round_trip() -> None:
    assert BalanceState.from_dict(ONLY_G.to_dict()) == ONLY_G
