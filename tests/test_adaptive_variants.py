"""AdaBelief, Yogi and Adan against the float64 transcriptions in `reference.py`."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, tree_trajectories

SHAPES = {"matrix": (4, 3), "vector": (5,), "scalar": ()}
STEPS = 12


def problem(seed, scale=1.0):
    """Random initial params and `STEPS` random gradients for leaves of ranks 2, 1 and 0."""
    rng = np.random.default_rng(seed)
    theta0 = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: scale * rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(STEPS)]
    return theta0, grads


def check_against(tx, ref, seed, rtol=1e-5, atol=1e-6, **ref_kwargs):
    theta0, grads = problem(seed)
    got = tree_trajectories(tx, theta0, grads)
    for k in SHAPES:
        want = ref(theta0[k], [g[k] for g in grads], **ref_kwargs)
        assert_trajectories_close(got[k], want, rtol=rtol, atol=atol)


def schedule_pair():
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 0.05, 3, 12, 0.005)
    return sched, lambda t: reference.warmup_cosine(t, 0.0, 0.05, 3, 12, 0.005)


# ---- AdaBelief ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"b1": 0.8, "b2": 0.95, "eps": 1e-8, "eps_root": 0.0}, {"nesterov": True}],
)
def test_adabelief_matches_reference(kwargs):
    check_against(
        gradtx.adabelief(1e-2, **kwargs), reference.adabelief, 0, learning_rate=1e-2, **kwargs
    )


def test_adabelief_with_schedule_matches_reference():
    sched, ref_sched = schedule_pair()
    check_against(gradtx.adabelief(sched), reference.adabelief, 1, learning_rate=ref_sched)


def test_adabelief_divides_by_the_spread_around_the_mean_not_the_magnitude():
    # A constant gradient g has no spread: g - m_t = 0.9^t g shrinks, and so does AdaBelief's
    # denominator, while Adam's stays |g|. After 50 steps AdaBelief's step is about 3.4 times
    # Adam's (sqrt(s^) is about 0.29 |g|).
    grads = [{"w": np.full((1,), 2.0)}] * 50
    belief = tree_trajectories(gradtx.adabelief(1e-3, eps=1e-8), {"w": np.zeros(1)}, grads)["w"]
    adam = tree_trajectories(gradtx.adam(1e-3), {"w": np.zeros(1)}, grads)["w"]
    np.testing.assert_allclose(adam[-1] - adam[-2], [-1e-3], rtol=1e-4)
    assert abs(belief[-1][0] - belief[-2][0]) > 3e-3


# ---- Yogi --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"b1": 0.8, "b2": 0.9, "eps": 1e-4}])
def test_yogi_matches_reference(kwargs):
    check_against(gradtx.yogi(1e-2, **kwargs), reference.yogi, 2, learning_rate=1e-2, **kwargs)


def test_scale_by_yogi_initial_accumulator_and_eps_root():
    sched, ref_sched = schedule_pair()
    tx = gradtx.chain(
        gradtx.scale_by_yogi(eps_root=1e-4, initial_accumulator_value=0.5),
        gradtx.scale_by_learning_rate(sched),
    )
    check_against(tx, reference.yogi, 3, learning_rate=ref_sched, eps_root=1e-4, v0=0.5)


def test_yogi_second_moment_moves_additively():
    # v_1 = v_0 + (1 - b2) g^2 when g^2 > v_0; v_2 = v_1 - (1 - b2) g^2 when g^2 < v_1.
    tx = gradtx.scale_by_yogi(b2=0.9, initial_accumulator_value=1.0)
    params = {"w": jnp.zeros(2)}
    state = tx.init(params)
    np.testing.assert_array_equal(state.mu["w"], np.zeros(2))
    _, state = tx.update({"w": jnp.array([3.0, 0.5])}, state)
    np.testing.assert_allclose(state.nu["w"], [1.0 + 0.1 * 9.0, 1.0 - 0.1 * 0.25], rtol=1e-6)


# ---- Adan --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"weight_decay": 0.1},
        {"b1": 0.9, "b2": 0.8, "b3": 0.95, "eps": 1e-6, "eps_root": 0.0},
    ],
)
def test_adan_matches_reference(kwargs):
    check_against(gradtx.adan(1e-2, **kwargs), reference.adan, 4, learning_rate=1e-2, **kwargs)


def test_adan_with_schedule_matches_reference():
    sched, ref_sched = schedule_pair()
    check_against(
        gradtx.adan(sched, weight_decay=0.05),
        reference.adan,
        5,
        learning_rate=ref_sched,
        weight_decay=0.05,
    )


def test_adan_gradient_difference_is_weighted_by_b2():
    # Two steps, g = 1 then -0.2, with b1 = b3 = 0 (no averaging), b2 = 0.9, eps = 1:
    #   d = -1.2,  m = -0.2,  v = 0.1 * d = -0.12,  v^ = v / (1 - 0.9^2) = -0.12 / 0.19
    #   n = (g + b2 d)^2 = (-0.2 - 1.08)^2 = 1.28^2
    #   u = (m + b2 v^) / (sqrt(n) + eps) = (-0.2 - 0.9 * 0.12 / 0.19) / 2.28
    # (Optax 0.2.8 weights d by 1 - b2 = 0.1 instead, which would give about -0.199.)
    tx = gradtx.scale_by_adan(b1=0.0, b2=0.9, b3=0.0, eps=1.0)
    state = tx.init({"w": jnp.zeros(1)})
    _, state = tx.update({"w": jnp.array([1.0])}, state)
    u, _ = tx.update({"w": jnp.array([-0.2])}, state)
    np.testing.assert_allclose(u["w"], [(-0.2 - 0.9 * 0.12 / 0.19) / 2.28], rtol=1e-6)


def test_adan_decay_is_decoupled_not_proximal():
    theta0, grads = problem(6)
    got = tree_trajectories(gradtx.adan(0.1, weight_decay=0.5), theta0, grads)
    for k in SHAPES:
        g = [step[k] for step in grads]
        decoupled = reference.adan(theta0[k], g, 0.1, weight_decay=0.5)
        proximal = reference.adan(theta0[k], g, 0.1, weight_decay=0.5, proximal=True)
        assert np.max(np.abs(decoupled[-1] - proximal[-1])) > 1e-3  # the two forms differ
        assert_trajectories_close(got[k], decoupled)


def test_adan_first_step_has_no_gradient_difference():
    # At t = 1: d = 0, so u = g / (|g| + eps) exactly as in Adam's first step (eps_root = 0).
    tx = gradtx.scale_by_adan(eps=1e-3)
    g = jnp.array([2.0, -0.5])
    u, state = tx.update({"w": g}, tx.init({"w": jnp.zeros(2)}))
    np.testing.assert_allclose(
        u["w"], np.array([2.0, -0.5]) / (np.array([2.0, 0.5]) + 1e-3), rtol=1e-6
    )
    np.testing.assert_array_equal(state.g["w"], g)
    np.testing.assert_array_equal(state.v["w"], np.zeros(2))


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: gradtx.adabelief(1e-3, b1=1.0),
            "scale_by_belief: `b1` must be in [0, 1), got 1.0.",
        ),
        (
            lambda: gradtx.adabelief(1e-3, eps_root=-1.0),
            "scale_by_belief: `eps_root` must be >= 0, got -1.0.",
        ),
        (lambda: gradtx.yogi(1e-3, b2=1.5), "scale_by_yogi: `b2` must be in [0, 1), got 1.5."),
        (
            lambda: gradtx.scale_by_yogi(initial_accumulator_value=-1e-6),
            "scale_by_yogi: `initial_accumulator_value` must be >= 0, got -1e-06.",
        ),
        (lambda: gradtx.adan(1e-3, b3=-0.1), "scale_by_adan: `b3` must be in [0, 1), got -0.1."),
        (
            lambda: gradtx.adan(1e-3, weight_decay=-0.1),
            "add_decayed_weights: `weight_decay` must be >= 0, got -0.1.",
        ),
    ],
)
def test_bad_hyperparameters(factory, message):
    with pytest.raises(ValueError) as info:
        factory()
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("tx", "fn", "field"),
    [
        (gradtx.scale_by_belief(), "scale_by_belief", "mu"),
        (gradtx.scale_by_yogi(), "scale_by_yogi", "mu"),
        (gradtx.scale_by_adan(), "scale_by_adan", "m"),
    ],
)
def test_state_built_for_other_params_names_the_leaf(tx, fn, field):
    state = tx.init({"w": jnp.zeros((2, 3))})
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.zeros((3, 2))}, state)
    assert str(info.value) == (
        f"{fn}: updates['w'] has shape (3, 2), but state.{field}['w'] has shape (2, 3). The "
        "optimizer state was built for other parameters: call `init` with the parameters you are "
        "updating."
    )
