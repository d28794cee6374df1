"""Shampoo against the float64 transcription in `reference.py`, its state layout, errors and a
convergence check on a least-squares problem whose ill-conditioning is not axis-aligned."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import tree_trajectories

SHAPES = {"w": (6, 4), "v": (4,), "s": ()}


def problem(seed=0, steps=12):
    rng = np.random.default_rng(seed)
    theta = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(steps)]
    return theta, grads


def check_against_reference(kwargs, dtype, rtol, atol, lr=0.1):
    theta, grads = problem()
    got = tree_trajectories(gradtx.shampoo(lr, **kwargs), theta, grads, dtype)
    for k in SHAPES:
        want = reference.shampoo(theta[k], [g[k] for g in grads], lr, **kwargs)
        for t, (a, e) in enumerate(zip(got[k], want, strict=True)):
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{k}, step {t}")


CONFIGS = {
    "defaults": {},
    "paper_algorithm_1": {"b1": 0.0},
    "ema_stored_roots": {"b2": 0.9, "preconditioning_compute_steps": 3},
    "matrix_too_large": {"max_preconditioner_dim": 5},
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_matches_reference_float32(config):
    # float32 eigh: the first step's statistics are rank 4 + eps * I (6 x 6), so the roots'
    # near-null eigenvectors carry float32 round-off amplified by eps^(-1/4) ~ 32.
    check_against_reference(CONFIGS[config], jnp.float32, rtol=2e-4, atol=2e-4)


def test_matches_reference_float64():
    with jax.enable_x64(True):
        check_against_reference(
            {"b2": 0.95, "preconditioning_compute_steps": 2}, jnp.float64, rtol=1e-9, atol=1e-10
        )


def test_first_step_is_the_preconditioned_gradient():
    # With b1 = 0 and statistics G G^T + eps I, the first direction is, up to eps,
    # (G G^T)^{-1/4} G (G^T G)^{-1/4} = U V^T for G = U S V^T: the orthogonal factor.
    g = np.random.default_rng(3).standard_normal((6, 4))
    tx = gradtx.scale_by_shampoo(b1=0.0, eps=1e-12)
    with jax.enable_x64(True):
        u, _ = tx.update({"w": jnp.asarray(g)}, tx.init({"w": jnp.zeros((6, 4), jnp.float64)}))
        got = np.asarray(u["w"])
    left, _, right = np.linalg.svd(g, full_matrices=False)
    np.testing.assert_allclose(got, left @ right, atol=1e-6)


def test_state_layout_and_memory():
    params = {"w": jnp.zeros((6, 4)), "v": jnp.zeros(4), "big": jnp.zeros((3, 9))}
    state = gradtx.scale_by_shampoo(max_preconditioner_dim=8).init(params)
    np.testing.assert_array_equal(state.stats["w"][0], 1e-6 * np.eye(6, dtype=np.float32))
    np.testing.assert_array_equal(state.stats["w"][1], 1e-6 * np.eye(4, dtype=np.float32))
    assert state.stats["v"].shape == (4,) and state.stats["big"].shape == (3, 9)
    assert state.roots == {"w": (), "v": (), "big": ()}
    sizes = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
    assert sizes(state.stats) == 6**2 + 4**2 + 4 + 27
    stored = gradtx.scale_by_shampoo(preconditioning_compute_steps=2).init(params)
    assert sizes(stored.roots) == 6**2 + 4**2 + 3**2 + 9**2


def test_roots_are_recomputed_every_k_steps():
    tx = gradtx.scale_by_shampoo(preconditioning_compute_steps=2)
    state = tx.init({"w": jnp.zeros((2, 3))})
    rng = np.random.default_rng(5)
    roots, stats = [], []
    for _ in range(4):
        g = {"w": jnp.asarray(rng.standard_normal((2, 3)), jnp.float32)}
        _, state = jax.jit(tx.update)(g, state)
        roots.append(np.asarray(state.roots["w"][0], np.float64))
        stats.append(np.asarray(state.stats["w"][0], np.float64))
    np.testing.assert_array_equal(roots[0], roots[1])
    np.testing.assert_array_equal(roots[2], roots[3])
    assert not np.allclose(roots[1], roots[2])
    # Steps 1 and 3 compute the roots from that step's statistics (the left ones, 2 x 2, are
    # full rank from the first step, so float32 round-off is not amplified by eps^(-1/4)).
    for t in (0, 2):
        want = reference._sym_power(stats[t], -0.25, 1e-6)
        np.testing.assert_allclose(roots[t], want, rtol=1e-4, atol=1e-4)


def test_bf16_params_stay_bf16_with_float32_statistics():
    params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.ones(3, jnp.bfloat16)}
    tx = gradtx.shampoo(0.1, preconditioning_compute_steps=2)
    state = tx.init(params)
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, jnp.bfloat16), params)
    updates, state = jax.jit(tx.update)(grads, state, params)
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}
    new = gradtx.apply_updates(params, updates)
    assert {x.dtype for x in jax.tree.leaves(new)} == {jnp.dtype(jnp.bfloat16)}
    inner = state[0]
    assert {x.dtype for x in jax.tree.leaves(inner.mu)} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves((inner.stats, inner.roots))} == {
        jnp.dtype(jnp.float32)
    }


# Least squares whose input covariance has condition number ~1e4 in a rotated basis, so that
# neither a diagonal preconditioner nor plain momentum fixes it. Loss 1308.4 at zeros.
_RNG = np.random.default_rng(0)
_Q, _ = np.linalg.qr(_RNG.standard_normal((6, 6)))
_X = jnp.asarray(
    _RNG.standard_normal((32, 6)) @ (_Q * np.array([1, 3, 10, 30, 0.3, 1.0])) @ _Q.T, jnp.float32
)
_Y = _X @ jnp.asarray(_RNG.standard_normal((6, 4)), jnp.float32)


def _loss(params):
    return 0.5 * jnp.mean((_X @ params["w"] - _Y) ** 2)


def _final_loss(tx, steps):
    def body(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(_loss)(params), state, params)
        return (gradtx.apply_updates(params, updates), state), None

    params = {"w": jnp.zeros((6, 4), jnp.float32)}
    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return float(_loss(params))


def test_converges_on_rotated_ill_conditioned_least_squares():
    assert _final_loss(gradtx.shampoo(1.0), 200) < 1e-5
    # The same budget leaves the diagonal and first-order methods far from the optimum.
    assert _final_loss(gradtx.adagrad(1.0), 200) > 0.1
    assert _final_loss(gradtx.sgd(2e-3, momentum=0.9), 200) > 0.1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"b1": 1.0}, "scale_by_shampoo: `b1` must be in [0, 1), got 1.0."),
        ({"b2": 1.5}, "scale_by_shampoo: `b2` must be in [0, 1], got 1.5."),
        ({"eps": 0.0}, "scale_by_shampoo: `eps` must be > 0, got 0.0."),
        (
            {"max_preconditioner_dim": 0},
            "scale_by_shampoo: `max_preconditioner_dim` must be an integer > 0, got 0.",
        ),
        (
            {"preconditioning_compute_steps": 1.5},
            "scale_by_shampoo: `preconditioning_compute_steps` must be an integer > 0, got 1.5.",
        ),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError) as info:
        gradtx.shampoo(0.1, **kwargs)
    assert str(info.value) == message


def test_mismatched_updates_name_the_leaf():
    tx = gradtx.shampoo(0.1)
    state = tx.init({"w": jnp.zeros((6, 4))})
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.zeros((4, 6))}, state)
    assert str(info.value) == (
        "scale_by_shampoo: updates['w'] has shape (4, 6), but state.mu['w'] has shape (6, 4). "
        + "The optimizer state was built for other parameters: call `init` with the parameters "
        "you are updating."
    )


def test_injected_b2_of_one_sums_the_statistics():
    # A traced b2 == 1 must take the paper's running sum, not the EMA weight 1 - b2 = 0.
    theta, grads = problem(seed=2, steps=10)
    injected = gradtx.inject_hyperparams(
        gradtx.shampoo, static_args=("max_preconditioner_dim", "preconditioning_compute_steps")
    )(0.1, b2=1.0)
    got = tree_trajectories(injected, theta, grads)
    for k in SHAPES:
        want = reference.shampoo(theta[k], [g[k] for g in grads], 0.1, b2=1.0)
        for t, (a, e) in enumerate(zip(got[k], want, strict=True)):
            np.testing.assert_allclose(a, e, rtol=2e-4, atol=2e-4, err_msg=f"{k}, step {t}")


def test_complex_params_are_refused():
    with pytest.raises(TypeError) as info:
        gradtx.shampoo(0.1).init({"w": jnp.zeros((2, 2), jnp.complex64)})
    assert str(info.value) == (
        "scale_by_shampoo: params['w'] has dtype complex64; Shampoo supports real floating-point "
        "leaves only."
    )
