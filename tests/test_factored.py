"""Adafactor and SM3 against `reference.py`, their state shapes and their memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, tree_trajectories

# Which axes are factored depends on the shape: with min_dim_size_to_factor=4, "wide" and
# "cube" are factored (over their two largest axes), "thin" is not (second-largest dim 2 < 4).
SHAPES = {"wide": (6, 5), "cube": (3, 5, 4), "thin": (2, 7), "vector": (5,), "scalar": ()}
STEPS = 12


def problem(seed, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    theta0 = {k: rng.standard_normal(s) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s) for k, s in shapes.items()} for _ in range(STEPS)]
    return theta0, grads


def check_against(tx, ref, seed, shapes=SHAPES, **ref_kwargs):
    theta0, grads = problem(seed, shapes)
    got = tree_trajectories(tx, theta0, grads)
    for k in shapes:
        want = ref(theta0[k], [g[k] for g in grads], **ref_kwargs)
        assert_trajectories_close(got[k], want, rtol=2e-5, atol=1e-6)


def state_bytes(tree):
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


# ---- Adafactor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # the paper's relative step size, clipping at 1
        {"learning_rate": 0.05, "decay_rate": 0.5, "clipping_threshold": None},
        {"learning_rate": 0.05, "multiply_by_parameter_scale": False, "clipping_threshold": 0.5},
        {"learning_rate": 0.05, "momentum": 0.9, "weight_decay_rate": 0.01, "eps": 1e-3},
    ],
)
def test_adafactor_matches_reference(kwargs):
    tx = gradtx.adafactor(min_dim_size_to_factor=4, **kwargs)
    check_against(tx, reference.adafactor, 0, min_dim_size_to_factor=4, **kwargs)


def test_adafactor_with_schedule_and_without_factoring():
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 0.1, 3, 12, 0.01)
    ref_sched = lambda t: reference.warmup_cosine(t, 0.0, 0.1, 3, 12, 0.01)
    check_against(gradtx.adafactor(sched), reference.adafactor, 1, learning_rate=ref_sched)
    check_against(
        gradtx.adafactor(sched, min_dim_size_to_factor=4, factored=False),
        reference.adafactor,
        2,
        learning_rate=ref_sched,
        min_dim_size_to_factor=10**9,
    )


def test_factored_rms_state_shapes():
    params = {k: jnp.zeros(s) for k, s in SHAPES.items()}
    state = gradtx.scale_by_factored_rms(min_dim_size_to_factor=4).init(params)
    shapes = lambda tree: {k: tuple(v.shape) for k, v in tree.items()}
    # Row statistics average over the largest axis, column statistics over the second largest.
    assert shapes(state.v_row) == {
        "wide": (5,),
        "cube": (3, 4),
        "thin": (0,),
        "vector": (0,),
        "scalar": (0,),
    }
    assert shapes(state.v_col) == {
        "wide": (6,),
        "cube": (3, 5),
        "thin": (0,),
        "vector": (0,),
        "scalar": (0,),
    }
    assert shapes(state.v) == {
        "wide": (0,),
        "cube": (0,),
        "thin": (2, 7),
        "vector": (5,),
        "scalar": (),
    }


def test_factored_rms_square_matrix_and_offset():
    # On a square matrix either axis may be called "rows"; the estimate is R C / sum(R).
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2, epsilon=0.0, step_offset=3)
    state = tx.init({"w": jnp.zeros((2, 2))})
    state = state._replace(count=jnp.asarray(2, jnp.int32))  # before the offset: a first step
    u, new_state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state)
    g_sq = g * g
    v = np.outer(g_sq.sum(1), g_sq.sum(0)) / g_sq.sum()
    np.testing.assert_allclose(u["w"], g / np.sqrt(v), rtol=1e-6)
    assert int(new_state.count) == 3


def test_adafactor_state_is_far_below_adamw_for_matrices():
    params = {"w": jnp.zeros((256, 128)), "b": jnp.zeros(128)}
    adafactor_bytes = state_bytes(gradtx.adafactor().init(params))
    adamw_bytes = state_bytes(gradtx.adamw(1e-3).init(params))
    # w: one row and one column vector (256 + 128 entries); b: a full vector (128); the step
    # counts of the second moment and of the relative step size.
    assert adafactor_bytes == (256 + 128 + 128) * 4 + 2 * 4
    assert adamw_bytes == 2 * (256 * 128 + 128) * 4 + 4
    assert adafactor_bytes < adamw_bytes / 100
    with_momentum = state_bytes(gradtx.adafactor(momentum=0.9).init(params))
    assert with_momentum < adamw_bytes  # momentum adds one full buffer (and a count), not two
    assert with_momentum == adafactor_bytes + (256 * 128 + 128) * 4 + 4


def test_adafactor_zero_gradient_row_gives_zero_update():
    # A zero gradient with epsilon = 0 would make 0 / 0; it is taken as 0.
    tx = gradtx.scale_by_factored_rms(min_dim_size_to_factor=2, epsilon=0.0)
    g = jnp.array([[0.0, 0.0], [1.0, 2.0]])
    u, _ = tx.update({"w": g}, tx.init({"w": g}))
    assert np.all(np.isfinite(u["w"]))
    np.testing.assert_array_equal(u["w"][0], [0.0, 0.0])


# ---- SM3 ---------------------------------------------------------------------------------------

SM3_SHAPES = {"matrix": (4, 3), "cube": (2, 3, 2), "vector": (5,), "scalar": ()}


@pytest.mark.parametrize("momentum", [0.9, None])
def test_sm3_matches_reference(momentum):
    check_against(
        gradtx.sm3(0.1, momentum=momentum),
        reference.sm3,
        3,
        SM3_SHAPES,
        learning_rate=0.1,
        momentum=momentum or 0.0,
    )


def test_scale_by_sm3_with_decay_and_schedule():
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 0.1, 3, 12, 0.01)
    ref_sched = lambda t: reference.warmup_cosine(t, 0.0, 0.1, 3, 12, 0.01)
    tx = gradtx.chain(
        gradtx.scale_by_sm3(b1=0.5, b2=0.9, eps=1e-4), gradtx.scale_by_learning_rate(sched)
    )
    check_against(
        tx, reference.sm3, 4, SM3_SHAPES, learning_rate=ref_sched, momentum=0.5, b2=0.9, eps=1e-4
    )


def test_sm3_keeps_one_accumulator_per_axis():
    params = {"w": jnp.zeros((256, 128)), "b": jnp.zeros(128), "s": jnp.zeros(())}
    state = gradtx.scale_by_sm3(b1=0.0).init(params)
    assert state.nu is None
    assert jax.tree.map(jnp.shape, state.mu) == {"w": [(256,), (128,)], "b": [(128,)], "s": [()]}
    sm3_bytes = state_bytes(gradtx.sm3(0.1, momentum=None).init(params))
    adam_bytes = state_bytes(gradtx.adam(1e-3).init(params))
    assert sm3_bytes == (256 + 128 + 128 + 1) * 4
    assert sm3_bytes < adam_bytes / 100
    param_bytes = (256 * 128 + 128 + 1) * 4
    assert state_bytes(gradtx.sm3(0.1).init(params)) == sm3_bytes + param_bytes


def test_sm3_accumulator_bounds_adagrad():
    # Each element's accumulator is at least its own sum of squared gradients (Adagrad's).
    rng = np.random.default_rng(5)
    tx = gradtx.scale_by_sm3(b1=0.0)
    state = tx.init({"w": jnp.zeros((4, 3))})
    total = np.zeros((4, 3))
    for _ in range(6):
        g = rng.standard_normal((4, 3))
        total += g * g
        _, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state)
        rows, cols = (np.asarray(a) for a in state.mu["w"])
        assert np.all(np.minimum(rows[:, None], cols[None, :]) >= total * (1 - 1e-6))


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: gradtx.adafactor(decay_rate=0.0),
            "scale_by_factored_rms: `decay_rate` must be > 0, got 0.0.",
        ),
        (
            lambda: gradtx.adafactor(min_dim_size_to_factor=1.5),
            "scale_by_factored_rms: `min_dim_size_to_factor` must be an integer >= 0, got 1.5.",
        ),
        (
            lambda: gradtx.adafactor(clipping_threshold=0.0),
            "adafactor: `clipping_threshold` must be > 0, got 0.0.",
        ),
        (
            lambda: gradtx.adafactor(momentum=1.0),
            "adafactor: `momentum` must be in [0, 1), got 1.0.",
        ),
        (
            lambda: gradtx.adafactor(weight_decay_rate=-1.0),
            "adafactor: `weight_decay_rate` must be >= 0, got -1.0.",
        ),
        (lambda: gradtx.sm3(0.1, momentum=-0.1), "scale_by_sm3: `b1` must be in [0, 1), got -0.1."),
        (lambda: gradtx.scale_by_sm3(b2=0.0), "scale_by_sm3: `b2` must be in (0, 1], got 0.0."),
        (lambda: gradtx.scale_by_sm3(b2=1.5), "scale_by_sm3: `b2` must be in (0, 1], got 1.5."),
    ],
)
def test_bad_hyperparameters(factory, message):
    with pytest.raises(ValueError) as info:
        factory()
    assert str(info.value) == message


HINT = "The optimizer state was built for other parameters: call `init` with the parameters you are updating."


@pytest.mark.parametrize(
    ("tx", "wrong_shape", "wrong_structure"),
    [
        (
            gradtx.scale_by_factored_rms(min_dim_size_to_factor=2),
            "scale_by_factored_rms: updates['w'] has shape (4, 3), but the state holds shapes state.v_row['w'] (2,), state.v_col['w'] (3,), state.v['w'] (0,), built for another shape.",
            "scale_by_factored_rms: `state.v_row` does not have the tree structure of `updates`.",
        ),
        (
            gradtx.scale_by_sm3(b1=0.0),
            "scale_by_sm3: updates['w'] has shape (4, 3), but the state holds shapes state.mu['w'] [(2,), (3,)], built for another shape.",
            "scale_by_sm3: `state.mu` does not have the tree structure of `updates`.",
        ),
        (
            gradtx.scale_by_sm3(),
            "scale_by_sm3: updates['w'] has shape (4, 3), but state.nu['w'] has shape (2, 3).",
            "scale_by_sm3: `updates` and `state.nu` have different tree structures: state.nu['w'] has no counterpart in `updates`.",
        ),
    ],
)
def test_state_built_for_other_params(tx, wrong_shape, wrong_structure):
    state = tx.init({"w": jnp.zeros((2, 3))})
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.zeros((4, 3))}, state)
    assert str(info.value) == f"{wrong_shape} {HINT}"
    with pytest.raises(ValueError) as info:
        tx.update({"v": jnp.zeros((2, 3))}, state)
    assert str(info.value) == f"{wrong_structure} {HINT}"
