"""Polyak SGD, Prodigy, D-Adaptation (AdamW, SGD) against the float64 rules in `reference.py`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close

THETA0 = np.random.default_rng(0).standard_normal((5, 3))
SCHEDULE = gradtx.linear_schedule(0.5, 1.5, 8)


def ref_schedule(t):
    return reference.linear(t, 0.5, 1.5, 8)


def drifting_grads(seed, steps=12):
    """Random gradients around a common mean, so that the distance estimates grow."""
    rng = np.random.default_rng(seed)
    return [0.5 * rng.standard_normal((5, 3)) + 1.0 for _ in range(steps)]


def run(tx, grads, values=None, theta0=THETA0, dtype=jnp.float32):
    """Parameters after each step (float64) and the last state, with a jitted step."""
    params = {"w": jnp.asarray(theta0, dtype)}

    @jax.jit
    def step(params, state, g, value):
        kwargs = {} if value is None else {"value": value}
        updates, state = tx.update({"w": g}, state, params, **kwargs)
        return gradtx.apply_updates(params, updates), state

    state, out = tx.init(params), []
    for t, g in enumerate(grads):
        value = None if values is None else jnp.float32(values[t])
        params, state = step(params, state, jnp.asarray(g, dtype), value)
        out.append(np.asarray(params["w"], np.float64))
    return out, state


# ---- Polyak ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "ref_kwargs"),
    [
        ({}, {}),
        ({"max_learning_rate": 0.08}, {"max_learning_rate": 0.08}),
        (
            {"max_learning_rate": 0.3, "scaling": SCHEDULE, "f_min": 0.5, "eps": 1e-2},
            {"max_learning_rate": 0.3, "scaling": ref_schedule, "f_min": 0.5, "eps": 1e-2},
        ),
    ],
)
def test_polyak_sgd_matches_reference(kwargs, ref_kwargs):
    grads = drifting_grads(1)
    values = list(np.random.default_rng(2).uniform(0.5, 3.0, len(grads)))
    got, _ = run(gradtx.polyak_sgd(**kwargs), grads, values)
    want = reference.polyak_sgd(THETA0, grads, values, **ref_kwargs)
    assert_trajectories_close(got, want)


def test_polyak_step_is_capped_gap_over_squared_norm():
    params = {"w": jnp.zeros(2)}
    g = {"w": jnp.array([3.0, 4.0])}  # ||g||^2 = 25
    for cap, value, step in [(1.0, 10.0, 0.4), (0.1, 10.0, 0.1), (1.0, -5.0, -0.2)]:
        tx = gradtx.polyak_sgd(max_learning_rate=cap)
        updates, _ = tx.update(g, tx.init(params), params, value=jnp.float32(value))
        np.testing.assert_allclose(updates["w"], -step * np.array([3.0, 4.0]), rtol=1e-6)
    # A zero gradient gives a zero update, not 0/0.
    tx = gradtx.polyak_sgd()
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params, value=jnp.float32(1))
    np.testing.assert_array_equal(updates["w"], np.zeros(2))


def test_polyak_needs_a_scalar_value():
    tx = gradtx.polyak_sgd()
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    with pytest.raises(ValueError) as e:
        tx.update(params, state, params)
    assert str(e.value) == (
        "scale_by_polyak: this transformation needs the loss value. Call "
        "`update(updates, state, params, value=loss)` (through `chain` too)."
    )
    with pytest.raises(ValueError) as e:
        tx.update(params, state, params, value=jnp.ones(2))
    assert str(e.value) == (
        "scale_by_polyak: `value` must be the scalar loss, got an array of shape (2,)."
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_polyak_under_jit_and_scan_keeps_dtypes(dtype):
    tx = gradtx.polyak_sgd(max_learning_rate=0.5, scaling=SCHEDULE)
    grads = drifting_grads(3, steps=5)
    values = np.random.default_rng(4).uniform(0.5, 3.0, 5)
    params = {"w": jnp.asarray(THETA0, dtype)}
    state0 = tx.init(params)

    def body(carry, xs):
        params, state = carry
        g, v = xs
        updates, new_state = tx.update({"w": g}, state, params, value=v)
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
        assert updates["w"].dtype == dtype
        return (gradtx.apply_updates(params, updates), new_state), None

    xs = (jnp.asarray(np.stack(grads), dtype), jnp.asarray(values, jnp.float32))
    (p_scan, _), _ = jax.jit(lambda c: jax.lax.scan(body, c, xs))((params, state0))
    assert p_scan["w"].dtype == dtype
    p_loop, _ = run(tx, grads, values, dtype=dtype)
    np.testing.assert_allclose(np.asarray(p_scan["w"], np.float64), p_loop[-1], rtol=1e-6)
    want = reference.polyak_sgd(THETA0, grads, values, 0.5, ref_schedule)[-1]
    tol = 1e-5 if dtype == jnp.float32 else 5e-2
    np.testing.assert_allclose(p_loop[-1], want, rtol=tol, atol=tol)


@pytest.mark.parametrize(("problem", "steps", "threshold"), [("quadratic", 200, 1e-6)])
def test_polyak_converges(problem, steps, threshold):
    a, c = jnp.array([1.0, 2.0, 5.0, 10.0]), jnp.array([1.0, -1.0, 2.0, 0.5])
    loss = lambda p: 0.5 * jnp.sum(a * (p["x"] - c) ** 2)  # minimum 0: f_min = 0 is exact
    tx = gradtx.polyak_sgd()

    def body(carry, _):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params, value=value)
        return (gradtx.apply_updates(params, updates), state), None

    params = {"x": jnp.array([3.0, 2.0, -1.0, 1.0])}
    (params, _), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))(
        (params, tx.init(params))
    )
    assert float(loss(params)) < threshold


# ---- Prodigy and D-Adaptation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"betas": (0.8, 0.99), "weight_decay": 0.1, "eps": 1e-4},
        {"safeguard_warmup": True, "beta3": 0.9, "estim_lr_coef": 2.0},
        {"learning_rate": "schedule", "estim_lr0": 1e-4},
    ],
)
def test_prodigy_matches_reference(kwargs):
    grads = drifting_grads(5)
    got_kwargs, ref_kwargs = dict(kwargs), dict(kwargs)
    if kwargs.get("learning_rate") == "schedule":
        got_kwargs["learning_rate"], ref_kwargs["learning_rate"] = SCHEDULE, ref_schedule
    for key, ref_key in [("betas", None), ("estim_lr0", "d0"), ("estim_lr_coef", "d_coef")]:
        if key in ref_kwargs:
            value = ref_kwargs.pop(key)
            ref_kwargs.update(
                {"b1": value[0], "b2": value[1]} if ref_key is None else {ref_key: value}
            )
    got, state = run(gradtx.prodigy(**got_kwargs), grads)
    assert_trajectories_close(got, reference.prodigy(THETA0, grads, **ref_kwargs))
    assert float(state.estim_lr) > 2 * kwargs.get("estim_lr0", 1e-6)  # d really adapted


@pytest.mark.parametrize(
    "kwargs", [{}, {"betas": (0.8, 0.99), "weight_decay": 0.1, "eps": 1e-6}, {"schedule": True}]
)
def test_dadapt_adamw_matches_reference(kwargs):
    grads = drifting_grads(6)
    got_kwargs, ref_kwargs = dict(kwargs), dict(kwargs)
    if got_kwargs.pop("schedule", False):
        ref_kwargs.pop("schedule")
        got_kwargs["learning_rate"], ref_kwargs["learning_rate"] = SCHEDULE, ref_schedule
    if "betas" in ref_kwargs:
        ref_kwargs["b1"], ref_kwargs["b2"] = ref_kwargs.pop("betas")
    got, state = run(gradtx.dadapt_adamw(**got_kwargs), grads)
    assert_trajectories_close(got, reference.dadapt_adamw(THETA0, grads, **ref_kwargs))
    assert float(state.estim_lr) > 10 * 1e-6


@pytest.mark.parametrize(
    ("kwargs", "ref_kwargs"),
    [
        ({}, {}),
        ({"momentum": 0.9, "estim_lr0": 1e-3}, {"momentum": 0.9, "d0": 1e-3}),
        ({"learning_rate": SCHEDULE}, {"learning_rate": ref_schedule}),
    ],
)
def test_dadapt_sgd_matches_reference(kwargs, ref_kwargs):
    grads = drifting_grads(7)
    got, state = run(gradtx.dadapt_sgd(**kwargs), grads)
    assert_trajectories_close(got, reference.dadapt_sgd(THETA0, grads, **ref_kwargs))
    assert float(state.estim_lr) > 100 * ref_kwargs.get("d0", 1e-6)


@pytest.mark.parametrize(
    "make", [lambda: gradtx.prodigy(), lambda: gradtx.dadapt_adamw(), lambda: gradtx.dadapt_sgd()]
)
def test_estimate_couples_all_leaves(make):
    # d is one scalar for the whole tree: splitting the parameter into two leaves changes nothing.
    grads = drifting_grads(8, steps=10)
    whole, _ = run(make(), grads)
    tx = make()
    params = {"a": jnp.asarray(THETA0[:2], jnp.float32), "b": jnp.asarray(THETA0[2:], jnp.float32)}
    state = tx.init(params)
    for t, g in enumerate(grads):
        g = {"a": jnp.asarray(g[:2], jnp.float32), "b": jnp.asarray(g[2:], jnp.float32)}
        updates, state = tx.update(g, state, params)
        params = gradtx.apply_updates(params, updates)
        np.testing.assert_allclose(
            np.concatenate([params["a"], params["b"]]), whole[t], rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradtx.prodigy(gradtx.linear_schedule(0.0, 1.0, 4)),
        lambda: gradtx.dadapt_adamw(gradtx.linear_schedule(0.0, 1.0, 4)),
        lambda: gradtx.dadapt_sgd(gradtx.linear_schedule(0.0, 1.0, 4)),
    ],
)
def test_warmup_from_zero_keeps_the_estimate_finite(make):
    # At lr = 0 the ratio's denominator is 0: d is kept (Optax's prodigy turns NaN here).
    grads = drifting_grads(9, steps=8)
    got, state = run(make(), grads)
    np.testing.assert_array_equal(got[0], THETA0.astype(np.float32))  # lr(0) = 0: no step
    assert np.all(np.isfinite(got[-1])) and float(state.estim_lr) > 1e-6


def test_dadapt_sgd_zero_first_gradient_never_moves():
    # The step is lr * d / ||g_0||: with g_0 = 0 the paper stops; here every step is 0.
    grads = [np.zeros((5, 3)), *drifting_grads(10, steps=3)]
    got, state = run(gradtx.dadapt_sgd(), grads)
    for theta in got:
        np.testing.assert_array_equal(theta, THETA0.astype(np.float32))
    assert float(state.estim_lr) == np.float32(1e-6)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: gradtx.prodigy(betas=(0.9,)),
            TypeError,
            "prodigy: `betas` must be a pair `(b1, b2)`, got (0.9,).",
        ),
        (
            lambda: gradtx.prodigy(betas=(0.9, 1.0)),
            ValueError,
            "prodigy: `betas[1]` must be in [0, 1), got 1.0.",
        ),
        (
            lambda: gradtx.dadapt_adamw(estim_lr0=0.0),
            ValueError,
            "dadapt_adamw: `estim_lr0` must be > 0, got 0.0.",
        ),
        (
            lambda: gradtx.dadapt_sgd(momentum=1.0),
            ValueError,
            "dadapt_sgd: `momentum` must be in [0, 1), got 1.0.",
        ),
        (
            lambda: gradtx.polyak_sgd(max_learning_rate=0.0),
            ValueError,
            "scale_by_polyak: `max_learning_rate` must be > 0, got 0.0.",
        ),
    ],
)
def test_bad_hyperparameters(make, error, message):
    with pytest.raises(error) as e:
        make()
    assert str(e.value) == message


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adamw", "dadapt_sgd"])
def test_update_needs_params_and_matching_trees(name):
    tx = getattr(gradtx, name)()
    params = {"w": jnp.ones((2, 3))}
    state = tx.init(params)
    with pytest.raises(ValueError) as e:
        tx.update(params, state)
    assert str(e.value) == (
        f"{name}: this transformation needs the current parameters. Call "
        "`update(updates, state, params)`, passing `params` as the third argument."
    )
    with pytest.raises(ValueError, match=rf"^{name}: updates\['w'\] has shape \(3, 2\)"):
        tx.update({"w": jnp.ones((3, 2))}, state, params)
