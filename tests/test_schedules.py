"""Schedules against their defining formulas (tests/reference.py), at the boundary steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference

STEPS = [0, 1, 2, 5, 9, 10, 11, 50, 99, 100, 101, 500, 10**6, 2**31 - 1]


def check(schedule, formula, steps=STEPS, rtol=1e-6, atol=1e-9):
    got = np.asarray(jax.jit(schedule)(jnp.asarray(steps, jnp.int32)), np.float64)
    want = np.array([formula(t) for t in steps])
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    for t in steps[:4]:  # a plain Python int step works too
        np.testing.assert_allclose(float(schedule(t)), formula(t), rtol=rtol, atol=atol)


def test_constant():
    check(gradtx.constant_schedule(0.3), lambda t: 0.3)


@pytest.mark.parametrize("begin", [0, 10])
def test_linear(begin):
    check(
        gradtx.linear_schedule(1.0, 0.1, 90, begin),
        lambda t: reference.linear(t, 1.0, 0.1, 90, begin),
    )


def test_polynomial():
    check(
        gradtx.polynomial_schedule(1.0, 0.1, 2.0, 100, 10),
        lambda t: 0.1 + 0.9 * (1 - min(max(t - 10, 0), 100) / 100) ** 2,
    )


@pytest.mark.parametrize(("alpha", "exponent"), [(0.0, 1.0), (0.1, 1.0), (0.0, 2.0)])
def test_cosine_decay(alpha, exponent):
    check(
        gradtx.cosine_decay_schedule(0.5, 100, alpha, exponent),
        lambda t: reference.cosine_decay(t, 0.5, 100, alpha, exponent),
    )


@pytest.mark.parametrize(
    ("init", "warmup", "end"), [(0.0, 10, 0.0), (0.01, 10, 0.05), (0.0, 0, 0.0)]
)
def test_warmup_cosine(init, warmup, end):
    sched = gradtx.warmup_cosine_decay_schedule(init, 1.0, warmup, 100, end)
    check(sched, lambda t: reference.warmup_cosine(t, init, 1.0, warmup, 100, end))
    assert float(sched(warmup)) == pytest.approx(1.0)
    assert float(sched(100)) == pytest.approx(end, abs=1e-7)
    assert float(sched(10**7)) == pytest.approx(end, abs=1e-7)  # holds its end value


def test_seed_schedule_boundaries():
    # The seed's recipe: 0 at step 0, max_lr after 1,000 warmup steps, 0 at step 10,000.
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 3e-4, 1000, 10_000, 0.0)
    assert float(sched(0)) == 0.0
    assert float(sched(500)) == pytest.approx(1.5e-4, rel=1e-6)
    assert float(sched(1000)) == pytest.approx(3e-4, rel=1e-7)
    assert float(sched(5500)) == pytest.approx(1.5e-4, rel=1e-5)
    assert float(sched(10_000)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize(("rate", "end"), [(0.5, None), (0.5, 0.1), (2.0, 5.0)])
def test_exponential_decay(staircase, rate, end):
    check(
        gradtx.exponential_decay(1.0, 10, rate, 5, staircase, end),
        lambda t: reference.exponential(t, 1.0, 10, rate, 5, staircase, end),
        steps=[0, 4, 5, 6, 14, 15, 16, 25, 40, 60],
    )


def test_piecewise_constant():
    sched = gradtx.piecewise_constant_schedule(0.1, {20: 0.5, 10: 0.1})
    check(sched, lambda t: 0.1 * (0.1 if t >= 10 else 1) * (0.5 if t >= 20 else 1))


def test_warmup_constant():
    check(gradtx.warmup_constant_schedule(0.0, 2.0, 10), lambda t: 2.0 * min(t, 10) / 10)


def test_join_schedules_restarts_the_count():
    sched = gradtx.join_schedules(
        [gradtx.constant_schedule(1.0), gradtx.linear_schedule(1.0, 0.0, 10)], [5]
    )
    check(
        sched,
        lambda t: 1.0 if t < 5 else reference.linear(t - 5, 1.0, 0.0, 10),
        steps=[0, 4, 5, 6, 10, 15, 20, 2**31 - 1],
    )


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: gradtx.linear_schedule(1.0, 0.0, 0),
            "linear_schedule: `transition_steps` must be an integer > 0, got 0.",
        ),
        (
            lambda: gradtx.cosine_decay_schedule(1.0, 10.5),
            "cosine_decay_schedule: `decay_steps` must be an integer > 0, got 10.5.",
        ),
        (
            lambda: gradtx.warmup_cosine_decay_schedule(0.0, 1.0, 100, 50),
            "warmup_cosine_decay_schedule: `decay_steps` (50) counts the whole schedule including warmup, so it must be >= `warmup_steps` (100).",
        ),
        (
            lambda: gradtx.exponential_decay(1.0, 10, -0.5),
            "exponential_decay: `decay_rate` must be > 0, got -0.5.",
        ),
        (
            lambda: gradtx.constant_schedule(float("nan")),
            "constant_schedule: `value` must be finite, got nan.",
        ),
        (
            lambda: gradtx.join_schedules([gradtx.constant_schedule(1.0)], [3]),
            "join_schedules: need one more schedule than boundaries, got 1 schedules and 1 boundaries.",
        ),
    ],
)
def test_bad_arguments(factory, message):
    with pytest.raises(ValueError) as info:
        factory()
    assert str(info.value) == message
