"""Gradient accumulation (`multi_steps`, `MultiSteps`) against a large-batch step and references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference

THETA0 = np.random.default_rng(0).standard_normal((5, 3))


# ---- k micro-batches == one step on the concatenated batch ------------------------------------


def loss(params, x, y):
    """Linear regression, a mean over the batch."""
    residual = x @ params["w"] + params["b"] - y
    return 0.5 * jnp.mean(residual**2)


def make_batches(real_steps, k, micro, seed=0):
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(3)
    xs = rng.standard_normal((real_steps, k * micro, 3)).astype(np.float32)
    ys = (xs @ w_true + 0.5 + 0.1 * rng.standard_normal((real_steps, k * micro))).astype(np.float32)
    return xs, ys


@pytest.mark.parametrize(
    "make_tx",
    [
        lambda: gradtx.sgd(0.1, momentum=0.9),
        lambda: gradtx.adamw(
            gradtx.warmup_cosine_decay_schedule(0.0, 5e-2, 2, 8, 1e-3), weight_decay=0.1
        ),
    ],
    ids=["sgd_momentum", "adamw_schedule"],
)
def test_k_micro_steps_equal_one_step_on_the_concatenated_batch(make_tx):
    k, micro, real_steps = 4, 8, 8
    xs, ys = make_batches(real_steps, k, micro)
    params0 = {"w": jnp.zeros(3, jnp.float32), "b": jnp.zeros([], jnp.float32)}
    grad = jax.grad(loss)

    big = make_tx()

    @jax.jit
    def big_step(params, state, x, y):
        updates, state = big.update(grad(params, x, y), state, params)
        return gradtx.apply_updates(params, updates), state

    acc = gradtx.multi_steps(make_tx(), k)

    @jax.jit
    def micro_step(params, state, x, y):
        updates, state = acc.update(grad(params, x, y), state, params)
        return gradtx.apply_updates(params, updates), state

    p_big, s_big = params0, big.init(params0)
    p_acc, s_acc = params0, acc.init(params0)
    for s in range(real_steps):
        p_big, s_big = big_step(p_big, s_big, xs[s], ys[s])
        for j in range(k):
            before = p_acc
            batch = slice(j * micro, (j + 1) * micro)
            p_acc, s_acc = micro_step(p_acc, s_acc, xs[s, batch], ys[s, batch])
            if j < k - 1:  # no step between real updates
                for a, b in zip(jax.tree.leaves(p_acc), jax.tree.leaves(before), strict=True):
                    np.testing.assert_array_equal(a, b)
        for a, b in zip(jax.tree.leaves(p_acc), jax.tree.leaves(p_big), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=f"real step {s}")
    assert int(s_acc.gradient_step) == real_steps
    # The inner state advanced once per real update, like the large-batch optimizer's.
    for a, b in zip(jax.tree.leaves(s_acc.inner_opt_state), jax.tree.leaves(s_big), strict=True):
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=2e-5, atol=2e-6
        )
    assert np.max(np.abs(np.asarray(p_big["w"]))) > 0.1  # training moved the weights


# ---- trajectories against the float64 references ---------------------------------------------


def micro_trajectory(tx, grads, dtype=jnp.float32, mode="jit"):
    """Parameters after each micro-step, as float64 arrays, and the final state."""
    params = {"w": jnp.asarray(THETA0, dtype)}

    def step(carry, g):
        params, state = carry
        updates, state = tx.update({"w": g}, state, params)
        params = gradtx.apply_updates(params, updates)
        return (params, state), params["w"]

    carry = (params, tx.init(params))
    if mode == "scan":
        carry, history = jax.lax.scan(step, carry, jnp.asarray(np.stack(grads), dtype))
        return [np.asarray(h, np.float64) for h in history], carry[1]
    step = jax.jit(step)
    out = []
    for g in grads:
        carry, w = step(carry, jnp.asarray(g, dtype))
        out.append(np.asarray(w, np.float64))
    return out, carry[1]


def expected_micro(theta0, grads, group_sizes, rule, combine=np.mean):
    """Parameters after each micro-step: `rule` applied to each group's combined gradient."""
    combined, ends, start = [], [], 0
    for size in group_sizes:
        combined.append(combine(np.stack(grads[start : start + size]), axis=0))
        start += size
        ends.append(start)
    real = rule(theta0, combined)
    out, done = [], 0
    for t in range(len(grads)):
        while done < len(ends) and ends[done] <= t + 1:
            done += 1
        out.append(real[done - 1] if done else np.asarray(theta0, np.float64))
    return out


def assert_close(got, want, rtol=1e-5, atol=1e-6):
    assert len(got) == len(want)
    for t, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"micro-step {t}")


@pytest.mark.parametrize("mode", ["jit", "scan"])
def test_adam_every_3_matches_reference_on_means(mode):
    grads = [np.random.default_rng(s).standard_normal((5, 3)) for s in range(36)]
    got, state = micro_trajectory(gradtx.multi_steps(gradtx.adam(1e-2), 3), grads, mode=mode)
    want = expected_micro(THETA0, grads, [3] * 12, lambda th, g: reference.adam(th, g, 1e-2))
    assert_close(got, want)
    assert int(state.mini_step) == 0 and int(state.gradient_step) == 12
    assert int(state.inner_opt_state[0].count) == 12
    np.testing.assert_array_equal(state.acc_grads["w"], np.zeros((5, 3)))


def test_partial_window_counts_and_sum_mode():
    grads = [np.random.default_rng(s).standard_normal((5, 3)) for s in range(14)]
    tx = gradtx.multi_steps(gradtx.sgd(0.1), 4, use_grad_mean=False)
    got, state = micro_trajectory(tx, grads)
    want = expected_micro(THETA0, grads, [4, 4, 4], lambda th, g: reference.sgd(th, g, 0.1), np.sum)
    assert_close(got, want)
    assert int(state.mini_step) == 2 and int(state.gradient_step) == 3
    np.testing.assert_allclose(state.acc_grads["w"], grads[12] + grads[13], rtol=1e-6)


@pytest.mark.parametrize(
    "every_k",
    [
        lambda s: jnp.where(s < 2, 1, 3),
        gradtx.piecewise_constant_schedule(1.0, {2: 3.0}),  # float-valued: rounded
    ],
    ids=["int_schedule", "float_schedule"],
)
def test_schedule_of_k_over_real_updates(every_k):
    grads = [np.random.default_rng(100 + s).standard_normal((5, 3)) for s in range(14)]
    got, state = micro_trajectory(gradtx.multi_steps(gradtx.sgd(0.1, momentum=0.5), every_k), grads)
    # k is 1 for the first two real updates, then 3: real updates after micro-steps 1, 2, 5, 8, 11, 14.
    rule = lambda th, g: reference.sgd(th, g, 0.1, momentum=0.5)
    assert_close(got, expected_micro(THETA0, grads, [1, 1, 3, 3, 3, 3], rule))
    assert int(state.gradient_step) == 6


def test_inner_schedule_advances_once_per_real_update():
    sched = gradtx.linear_schedule(0.1, 0.01, 5)
    grads = [np.random.default_rng(200 + s).standard_normal((5, 3)) for s in range(12)]
    got, _ = micro_trajectory(gradtx.multi_steps(gradtx.sgd(sched), 2), grads)
    rule = lambda th, g: reference.sgd(th, g, lambda t: reference.linear(t, 0.1, 0.01, 5))
    assert_close(got, expected_micro(THETA0, grads, [2] * 6, rule))


def test_bf16_gradients_accumulate_in_float32():
    grads = [np.random.default_rng(300 + s).standard_normal((5, 3)) for s in range(12)]
    tx = gradtx.multi_steps(gradtx.sgd(0.1), 4)
    got, state = micro_trajectory(tx, grads, dtype=jnp.bfloat16)
    assert state.acc_grads["w"].dtype == jnp.float32
    bf16 = [np.asarray(jnp.asarray(g, jnp.bfloat16), np.float64) for g in grads]
    want = expected_micro(THETA0, bf16, [4, 4, 4], lambda th, g: reference.sgd(th, g, 0.1))
    assert_close(got, want, rtol=2e-2, atol=2e-2)  # bf16 parameters: 8 bits of mantissa
    params = {"w": jnp.asarray(THETA0, jnp.bfloat16)}
    updates, _ = tx.update({"w": jnp.ones((5, 3), jnp.bfloat16)}, tx.init(params), params)
    assert updates["w"].dtype == jnp.bfloat16
    low = gradtx.multi_steps(gradtx.sgd(0.1), 4, accumulator_dtype=jnp.bfloat16)
    assert low.init({"w": jnp.zeros(2, jnp.float32)}).acc_grads["w"].dtype == jnp.bfloat16


def test_multi_steps_object_form():
    opt = gradtx.MultiSteps(gradtx.sgd(0.1), 2)
    assert isinstance(opt.gradient_transformation(), gradtx.GradientTransformationExtraArgs)
    params = {"w": jnp.asarray(THETA0, jnp.float32)}
    state = opt.init(params)
    flags = []
    for s in range(4):
        g = {"w": jnp.full((5, 3), float(s), jnp.float32)}
        updates, state = opt.update(g, state, params)
        params = gradtx.apply_updates(params, updates)
        flags.append(bool(opt.has_updated(state)))
    assert flags == [False, True, False, True]
    # Two real steps with the means 0.5 and 2.5 of the gradients 0, 1 and 2, 3.
    np.testing.assert_allclose(params["w"], THETA0 - 0.1 * (0.5 + 2.5), rtol=1e-6)


def test_extra_args_are_forwarded_to_the_inner_transformation():
    def update_fn(updates, state, params=None, *, value):
        return jax.tree.map(lambda u: u * value.astype(u.dtype), updates), state

    inner = gradtx.GradientTransformationExtraArgs(lambda p: gradtx.EmptyState(), update_fn)
    tx = gradtx.multi_steps(inner, 2)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    u1, state = tx.update({"w": jnp.ones(2)}, state, params, value=jnp.float32(3.0))
    u2, state = tx.update({"w": jnp.full(2, 3.0)}, state, params, value=jnp.float32(3.0))
    np.testing.assert_array_equal(u1["w"], [0.0, 0.0])
    np.testing.assert_array_equal(u2["w"], [6.0, 6.0])


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: gradtx.multi_steps(gradtx.sgd(0.1), 0),
            ValueError,
            "multi_steps: `every_k_schedule` must be an integer > 0, got 0.",
        ),
        (
            lambda: gradtx.multi_steps(gradtx.sgd(0.1), 2.0),
            ValueError,
            "multi_steps: `every_k_schedule` must be an integer > 0, got 2.0.",
        ),
        (
            lambda: gradtx.multi_steps(gradtx.sgd(0.1), 2, should_skip_update_fn=True),
            TypeError,
            "multi_steps: `should_skip_update_fn` must be a function `(updates, gradient_step, params) -> (skip, info)`, got True.",
        ),
        (
            lambda: gradtx.multi_steps(gradtx.sgd(0.1), 2, accumulator_dtype=jnp.int32),
            TypeError,
            "multi_steps: `accumulator_dtype` must be a floating dtype, got int32.",
        ),
        (
            lambda: gradtx.multi_steps(None, 2),
            TypeError,
            "multi_steps: `inner` must be a GradientTransformation (an `(init, update)` pair such as `gradtx.adam(1e-3)`), got NoneType.",
        ),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message


def test_update_errors():
    tx = gradtx.multi_steps(gradtx.sgd(0.1), 2)
    state = tx.init({"w": jnp.ones(2), "b": jnp.ones(3)})
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.ones(2)}, state)
    assert str(info.value) == (
        "multi_steps: `updates` and `state.acc_grads` have different tree structures: state.acc_grads['b'] has no counterpart in `updates`. The optimizer state was built for other parameters: call `init` with the parameters you are updating."
    )
    bad = gradtx.multi_steps(
        gradtx.sgd(0.1), 2, should_skip_update_fn=lambda u, s, p: (jnp.zeros(2, bool), ())
    )
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError) as info:
        bad.update(params, bad.init(params))
    assert str(info.value) == (
        "multi_steps: `should_skip_update_fn` must return a bool scalar as its first output, got an array of dtype bool and shape (2,)."
    )
