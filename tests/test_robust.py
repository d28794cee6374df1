"""`apply_if_finite`, `zero_nans`, `skip_not_finite` and `skip_large_updates`."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference

THETA0 = np.random.default_rng(0).standard_normal((5, 3))


def grads_with_bad_steps(bad, steps, seed=0):
    """Random gradients; at the steps in `bad`, one element is NaN (even steps) or inf (odd)."""
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal((5, 3)) for _ in range(steps)]
    for t in bad:
        grads[t][t % 5, t % 3] = np.nan if t % 2 == 0 else np.inf
    return grads


def run(tx, grads, mode="jit"):
    """Parameters after each step (float64) and the states after each step."""
    params = {"w": jnp.asarray(THETA0, jnp.float32)}

    def step(carry, g):
        params, state = carry
        updates, state = tx.update({"w": g}, state, params)
        params = gradtx.apply_updates(params, updates)
        return (params, state), (params["w"], state)

    carry = (params, tx.init(params))
    if mode == "scan":
        _, (ws, states) = jax.lax.scan(step, carry, jnp.asarray(np.stack(grads), jnp.float32))
        unstack = [jax.tree.map(lambda x, t=t: x[t], states) for t in range(len(grads))]
        return [np.asarray(w, np.float64) for w in ws], unstack
    step = jax.jit(step)
    ws, states = [], []
    for g in grads:
        carry, (w, state) = step(carry, jnp.asarray(g, jnp.float32))
        ws.append(np.asarray(w, np.float64))
        states.append(state)
    return ws, states


def assert_close(got, want, rtol=1e-5, atol=1e-6):
    for t, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"step {t}")


def expected_apply_if_finite(grads, max_errors, rule):
    """The documented rule, step by step: parameters, counters, and which steps were accepted."""
    accepted, theta, count, total, out = [], np.asarray(THETA0, np.float64), 0, 0, []
    counters = []
    for g in grads:
        finite = bool(np.all(np.isfinite(g)))
        count = 0 if finite else count + 1
        total += not finite
        if finite or count > max_errors:
            accepted.append(g)
            with np.errstate(invalid="ignore"):  # the step let through carries its inf
                theta = rule(THETA0, accepted)[-1]
        out.append(theta)
        counters.append((count, finite, total, len(accepted)))
    return out, counters


@pytest.mark.parametrize("mode", ["jit", "scan"])
def test_apply_if_finite_skips_up_to_the_limit_then_lets_through(mode):
    # Bad steps: one isolated, two in a row, then three in a row (the third passes, max=2).
    bad = [2, 5, 6, 9, 10, 11]
    grads = grads_with_bad_steps(bad, 14)
    rule = lambda th, g: reference.adam(th, g, 1e-2)
    got, states = run(gradtx.apply_if_finite(gradtx.adam(1e-2), 2), grads, mode)
    want, counters = expected_apply_if_finite(grads, 2, rule)
    assert_close(got[:11], want[:11])
    for t in [2, 5, 6, 9, 10]:  # skipped: parameters bit-for-bit unchanged
        np.testing.assert_array_equal(got[t], got[t - 1])
    # Step 11 is the third non-finite step in a row: it reaches Adam, and its inf poisons the
    # element it sits in (Adam's inf / inf is NaN), then every later step of that element.
    poisoned = np.zeros((5, 3), bool)
    poisoned[11 % 5, 11 % 3] = True
    for t in [11, 12, 13]:
        assert np.all(np.isnan(got[t][poisoned])) and np.all(np.isfinite(got[t][~poisoned]))
    for t, (state, (count, finite, total, n_accepted)) in enumerate(
        zip(states, counters, strict=True)
    ):
        assert int(state.notfinite_count) == count, t
        assert bool(state.last_finite) == finite, t
        assert int(state.total_notfinite) == total, t
        assert int(state.inner_state[0].count) == n_accepted, t  # the inner count: accepted only
    assert [c[0] for c in counters] == [0, 0, 1, 0, 0, 1, 2, 0, 0, 1, 2, 3, 0, 0]


def test_apply_if_finite_with_zero_tolerance_skips_nothing():
    grads = grads_with_bad_steps([4], 10)
    got, states = run(gradtx.apply_if_finite(gradtx.sgd(0.1), 0), grads)
    with np.errstate(invalid="ignore"):
        want = reference.sgd(THETA0, grads, 0.1)
    assert_close(got, want)  # NaN in the one element from step 4 on (NaN == NaN here)
    assert np.isnan(got[4][4, 1]) and np.sum(np.isnan(got[-1])) == 1
    assert int(states[4].notfinite_count) == 1 and int(states[5].notfinite_count) == 0
    assert int(states[-1].total_notfinite) == 1


def test_apply_if_finite_keeps_bf16_and_empty_trees():
    tx = gradtx.apply_if_finite(gradtx.adam(1e-2), 1)
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    bad = {"w": jnp.asarray([1.0, np.nan, 0.0], jnp.bfloat16)}
    updates, state = jax.jit(tx.update)(bad, tx.init(params), params)
    assert updates["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(updates["w"], np.float32), [0.0, 0.0, 0.0])
    assert int(state.inner_state[0].count) == 0
    updates, state = tx.update({}, tx.init({}), {})
    assert updates == {} and bool(state.last_finite)


def test_finiteness_is_judged_per_group_inside_partition():
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    tx = gradtx.partition(
        {"guarded": gradtx.apply_if_finite(gradtx.sgd(1.0), 3), "plain": gradtx.sgd(1.0)},
        {"a": "guarded", "b": "plain"},
    )
    state = tx.init(params)
    nan_in_a = {"a": jnp.asarray([np.nan, 1.0]), "b": jnp.asarray([2.0, 3.0])}
    updates, state = jax.jit(tx.update)(nan_in_a, state, params)
    np.testing.assert_array_equal(updates["a"], [0.0, 0.0])  # skipped
    np.testing.assert_array_equal(updates["b"], [-2.0, -3.0])
    nan_in_b = {"a": jnp.asarray([4.0, 5.0]), "b": jnp.asarray([np.nan, 1.0])}
    updates, state = jax.jit(tx.update)(nan_in_b, state, params)
    np.testing.assert_array_equal(updates["a"], [-4.0, -5.0])  # its own leaves are finite
    assert np.isnan(updates["b"][0])
    guard = state.inner_states["guarded"].inner_state
    assert int(guard.total_notfinite) == 1 and int(guard.notfinite_count) == 0


def test_zero_nans_values_flags_and_dtypes():
    tx = gradtx.zero_nans()
    updates = {
        "a": jnp.asarray([1.0, np.nan, np.inf, -2.0], jnp.bfloat16),
        "b": [jnp.asarray([[3.0, 4.0]], jnp.float32), None],
    }
    state = tx.init(updates)
    assert jax.tree.leaves(state.found_nan) == [False, False]
    new, state = jax.jit(tx.update)(updates, state)
    assert new["a"].dtype == jnp.bfloat16 and new["b"][1] is None
    np.testing.assert_array_equal(np.asarray(new["a"], np.float32), [1.0, 0.0, np.inf, -2.0])
    np.testing.assert_array_equal(new["b"][0], [[3.0, 4.0]])
    assert bool(state.found_nan["a"]) and not bool(state.found_nan["b"][0])
    assert state.found_nan["a"].dtype == jnp.bool_ and state.found_nan["a"].shape == ()


def test_zero_nans_then_sgd_matches_reference():
    grads = grads_with_bad_steps([0, 2, 4, 6, 8, 10], 12)  # NaN at even steps (no inf)
    got, states = run(gradtx.chain(gradtx.zero_nans(), gradtx.sgd(0.1, momentum=0.9)), grads)
    cleaned = [np.where(np.isnan(g), 0.0, g) for g in grads]
    assert_close(got, reference.sgd(THETA0, cleaned, 0.1, momentum=0.9))
    assert [bool(s[0].found_nan["w"]) for s in states] == [t % 2 == 0 for t in range(12)]


def test_zero_nans_state_must_match_the_updates():
    tx = gradtx.zero_nans()
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.ones(2)}, tx.init({"v": jnp.ones(2)}))
    assert str(info.value) == (
        "zero_nans: `updates` and `state.found_nan` have different tree structures: state.found_nan['v'] has no counterpart in `updates`. The optimizer state was built for other parameters: call `init` with the parameters you are updating."
    )


# ---- skip functions for multi_steps -----------------------------------------------------------


def test_skip_functions_values():
    tree = {"a": jnp.asarray([3.0, 4.0], jnp.bfloat16), "b": jnp.asarray([[1.0]], jnp.float32)}
    skip, info = gradtx.skip_large_updates(tree, 0, None, max_squared_norm=26.01)
    assert not bool(skip) and float(info["norm_squared"]) == 9.0 + 16.0 + 1.0
    assert info["norm_squared"].dtype == jnp.float32  # bf16 leaves are summed in float32
    skip, _ = gradtx.skip_large_updates(tree, 0, None, max_squared_norm=25.99)
    assert bool(skip)
    nan_tree = {"a": jnp.asarray([np.nan]), "b": jnp.asarray([np.inf, -np.inf])}
    skip, info = gradtx.skip_large_updates(nan_tree, 0, None, max_squared_norm=1e30)
    assert bool(skip) and np.isnan(info["norm_squared"])
    skip, info = gradtx.skip_not_finite(nan_tree, 0, None)
    assert bool(skip) and int(info["num_not_finite"]) == 3
    skip, info = gradtx.skip_not_finite(tree, 0, None)
    assert not bool(skip) and int(info["num_not_finite"]) == 0
    skip, info = gradtx.skip_not_finite({}, 0, None)
    assert not bool(skip)
    with pytest.raises(ValueError) as err:
        gradtx.skip_large_updates(tree, 0, None, max_squared_norm=float("nan"))
    assert str(err.value) == "skip_large_updates: `max_squared_norm` must be finite, got nan."


def test_skip_norm_squared_exact_at_the_threshold():
    """`skip = not (n2 < max)`: equality skips, as in Optax."""
    tree = {"a": jnp.asarray([3.0, 4.0])}  # n2 = 25 exactly
    assert bool(gradtx.skip_large_updates(tree, 0, None, max_squared_norm=25.0)[0])
    assert not bool(gradtx.skip_large_updates(tree, 0, None, max_squared_norm=25.5)[0])


@pytest.mark.parametrize("mode", ["jit", "scan"])
def test_multi_steps_skips_large_updates(mode):
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal((5, 3)) * (10.0 if t in (3, 4, 9) else 1.0) for t in range(14)]
    limit = 60.0
    tx = gradtx.multi_steps(
        gradtx.adam(1e-2),
        1,
        should_skip_update_fn=functools.partial(gradtx.skip_large_updates, max_squared_norm=limit),
    )
    got, states = run(tx, grads, mode)
    norms = [float(np.sum(np.asarray(g, np.float32).astype(np.float64) ** 2)) for g in grads]
    skipped = [n >= limit for n in norms]
    assert skipped == [t in (3, 4, 9) for t in range(14)]  # the test data do what we intend
    accepted, want, theta = [], [], np.asarray(THETA0, np.float64)
    for g, skip in zip(grads, skipped, strict=True):
        if not skip:
            accepted.append(g)
            theta = reference.adam(THETA0, accepted, 1e-2)[-1]
        want.append(theta)
    assert_close(got, want)
    for t, state in enumerate(states):
        assert bool(state.skip_state["should_skip"]) == skipped[t]
        np.testing.assert_allclose(state.skip_state["norm_squared"], norms[t], rtol=1e-5)
        assert int(state.inner_opt_state[0].count) == t + 1 - sum(skipped[: t + 1])


def test_multi_steps_drops_non_finite_micro_batches():
    grads = grads_with_bad_steps([2, 7], 14)
    tx = gradtx.multi_steps(gradtx.sgd(0.1), 3, should_skip_update_fn=gradtx.skip_not_finite)
    got, states = run(tx, grads)
    good = [t for t in range(14) if t not in (2, 7)]  # groups of 3 good micro-batches
    groups = [good[i : i + 3] for i in range(0, 12, 3)]
    means = [np.mean([grads[t] for t in grp], axis=0) for grp in groups]
    real = reference.sgd(THETA0, means, 0.1)
    ends = [grp[-1] for grp in groups]
    want = [([np.asarray(THETA0, np.float64), *real])[sum(e <= t for e in ends)] for t in range(14)]
    assert_close(got, want)
    assert [int(s.mini_step) for s in states] == [1, 2, 2, 0, 1, 2, 0, 0, 1, 2, 0, 1, 2, 0]
    assert int(states[7].skip_state["num_not_finite"]) == 1


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: gradtx.apply_if_finite(gradtx.sgd(0.1), -1),
            ValueError,
            "apply_if_finite: `max_consecutive_errors` must be an integer >= 0, got -1.",
        ),
        (
            lambda: gradtx.apply_if_finite(gradtx.sgd(0.1), 1.5),
            ValueError,
            "apply_if_finite: `max_consecutive_errors` must be an integer >= 0, got 1.5.",
        ),
        (
            lambda: gradtx.apply_if_finite("adam", 1),
            TypeError,
            "apply_if_finite: `inner` must be a GradientTransformation (an `(init, update)` pair such as `gradtx.adam(1e-3)`), got str.",
        ),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message
