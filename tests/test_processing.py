"""Block-RMS and adaptive clipping, centralization, gradient noise, DP clipping, normalization."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, random_grads

SHAPES = {"conv": (3, 3, 2, 4), "dense": (5, 3), "heads": (4, 2, 3), "bias": (3,), "scale": ()}


def tree(seed, scales=None):
    rng = np.random.default_rng(seed)
    scales = scales or {}
    return {k: scales.get(k, 1.0) * rng.standard_normal(s) for k, s in SHAPES.items()}


def as_jnp(t, dtype=jnp.float32):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), t)


def assert_tree_close(got, want, rtol=1e-5, atol=1e-6):
    for key in want:
        np.testing.assert_allclose(
            np.asarray(got[key], np.float64), want[key], rtol=rtol, atol=atol, err_msg=key
        )


def sgd_trajectory(tx, theta0, grads, lr):
    """Parameters after each jitted step of `chain(tx, sgd(lr))` on a tree of parameters."""
    opt = gradtx.chain(tx, gradtx.sgd(lr))
    params = as_jnp(theta0)
    state = opt.init(params)

    @jax.jit
    def step(params, state, g):
        updates, state = opt.update(g, state, params)
        return gradtx.apply_updates(params, updates), state

    out = []
    for g in grads:
        params, state = step(params, state, as_jnp(g))
        out.append({k: np.asarray(v, np.float64) for k, v in params.items()})
    return out


def reference_sgd_trajectory(rule, theta0, grads, lr):
    """theta -= lr * rule(g, theta), leaf by leaf, in float64."""
    theta, out = dict(theta0), []
    for g in grads:
        theta = {k: theta[k] - lr * rule(g[k], theta[k]) for k in theta}
        out.append(theta)
    return out


def assert_tree_trajectories_close(got, want, rtol=1e-5, atol=1e-6):
    assert len(got) == len(want)
    for t, (a, b) in enumerate(zip(got, want, strict=True)):
        for k in b:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=f"{k}, step {t}")


# ---- clip_by_block_rms -----------------------------------------------------------------------


def test_clip_by_block_rms_matches_reference():
    g = tree(0, {"dense": 5.0, "bias": 0.1, "scale": 3.0})
    tx = gradtx.clip_by_block_rms(1.0)
    out, _ = jax.jit(tx.update)(as_jnp(g), tx.init(None))
    assert_tree_close(out, {k: reference.block_rms_clip(v, 1.0) for k, v in g.items()})


def test_clip_by_block_rms_leaves_small_blocks_bitwise_unchanged():
    g = as_jnp(tree(1, {"dense": 10.0}), jnp.bfloat16)
    out, _ = jax.jit(gradtx.clip_by_block_rms(2.0).update)(g, gradtx.EmptyState())
    for k in SHAPES:
        assert out[k].dtype == jnp.bfloat16
        if k != "dense":
            np.testing.assert_array_equal(out[k], g[k])
    rms = np.sqrt(np.mean(np.asarray(out["dense"], np.float64) ** 2))
    np.testing.assert_allclose(rms, 2.0, rtol=1e-2)


def test_clip_by_block_rms_trajectory():
    grads = [tree(s, {"conv": 4.0, "scale": 2.0}) for s in range(10, 22)]
    got = sgd_trajectory(gradtx.clip_by_block_rms(0.5), tree(2), grads, 0.1)
    want = reference_sgd_trajectory(
        lambda g, p: reference.block_rms_clip(g, 0.5), tree(2), grads, 0.1
    )
    assert_tree_trajectories_close(got, want)


def test_clip_by_block_rms_non_finite_block_becomes_nan():
    g = {"a": jnp.asarray([1.0, jnp.inf]), "b": jnp.ones(2)}
    out, _ = gradtx.clip_by_block_rms(1.0).update(g, gradtx.EmptyState())
    assert np.all(np.isnan(out["a"]))
    np.testing.assert_array_equal(out["b"], [1.0, 1.0])


# ---- adaptive_grad_clip ----------------------------------------------------------------------


def test_adaptive_grad_clip_matches_reference():
    g, p = tree(3, {"dense": 0.3, "bias": 0.01}), tree(4, {"conv": 0.05})
    p["scale"] = np.float64(0.0)  # a zero parameter: the bound is clipping * eps
    tx = gradtx.adaptive_grad_clip(0.1)
    out, _ = jax.jit(tx.update)(as_jnp(g), tx.init(as_jnp(p)), as_jnp(p))
    want = {k: reference.adaptive_grad_clip(g[k], p[k], 0.1) for k in g}
    assert_tree_close(out, want)
    clipped = {k for k in g if not np.allclose(want[k], g[k])}
    assert clipped == {"conv", "dense", "heads", "scale"}  # the reference clips some units
    np.testing.assert_array_equal(out["bias"], np.float32(g["bias"]))  # below the bound: as is


def test_adaptive_grad_clip_units_are_output_features():
    # Column j of a (in, out) kernel is clipped against the norm of column j of the params.
    p = jnp.asarray([[3.0, 0.0], [4.0, 1.0]])
    g = jnp.asarray([[6.0, 0.5], [8.0, 0.0]])
    tx = gradtx.adaptive_grad_clip(1.0)
    out, _ = jax.jit(tx.update)({"w": g}, gradtx.EmptyState(), {"w": p})
    np.testing.assert_allclose(out["w"], [[3.0, 0.5], [4.0, 0.0]], rtol=1e-6)


def test_adaptive_grad_clip_trajectory_and_axis():
    grads = [tree(s, {"dense": 2.0}) for s in range(30, 42)]
    got = sgd_trajectory(gradtx.adaptive_grad_clip(0.05), tree(5), grads, 0.5)
    rule = lambda g, p: reference.adaptive_grad_clip(g, p, 0.05)
    assert_tree_trajectories_close(got, reference_sgd_trajectory(rule, tree(5), grads, 0.5))
    # axis=0: the units of a (in, heads, head_dim) kernel are (head, dim) pairs.
    g, p = tree(6)["heads"], tree(7)["heads"]
    tx = gradtx.adaptive_grad_clip(0.05, axis=0)
    out, _ = jax.jit(tx.update)({"h": jnp.asarray(g)}, gradtx.EmptyState(), {"h": jnp.asarray(p)})
    gn = np.sqrt(np.sum(g * g, axis=0, keepdims=True))
    bound = 0.05 * np.maximum(np.sqrt(np.sum(p * p, axis=0, keepdims=True)), 1e-3)
    np.testing.assert_allclose(out["h"], np.where(gn < bound, g, g * bound / gn), rtol=1e-5)


def test_adaptive_grad_clip_needs_params():
    tx = gradtx.adaptive_grad_clip(0.1)
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.ones(2)}, tx.init(None))
    assert str(info.value) == (
        "adaptive_grad_clip: this transformation needs the current parameters. Call "
        "`update(updates, state, params)`, passing `params` as the third argument."
    )


# ---- centralize ------------------------------------------------------------------------------


def test_centralize_matches_reference(maybe_jit):
    g = tree(8)
    out, _ = maybe_jit(gradtx.centralize().update)(as_jnp(g), gradtx.EmptyState())
    assert_tree_close(out, {k: reference.centralize(v) for k, v in g.items()})
    np.testing.assert_allclose(np.sum(np.asarray(out["conv"]), axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_array_equal(out["bias"], np.float32(g["bias"]))
    np.testing.assert_array_equal(out["scale"], np.float32(g["scale"]))


def test_centralize_then_adam_trajectory():
    grads = random_grads(40)
    theta0 = np.random.default_rng(9).standard_normal((5, 3))
    opt = gradtx.chain(gradtx.centralize(), gradtx.adam(1e-2))
    params = {"w": jnp.asarray(theta0, jnp.float32)}
    state, step = opt.init(params), jax.jit(opt.update)
    got = []
    for g in grads:
        updates, state = step({"w": jnp.asarray(g, jnp.float32)}, state, params)
        params = gradtx.apply_updates(params, updates)
        got.append(np.asarray(params["w"], np.float64))
    want = reference.adam(theta0, [reference.centralize(g) for g in grads], 1e-2)
    assert_trajectories_close(got, want)


# ---- add_noise -------------------------------------------------------------------------------


def test_add_noise_variance_follows_the_annealing_schedule():
    eta, gamma = 0.5, 0.55
    tx = gradtx.add_noise(eta, gamma, seed=0)
    zeros = {"a": jnp.zeros((100, 100)), "b": jnp.zeros((50, 200))}
    state, step = tx.init(zeros), jax.jit(tx.update)
    for t in range(10):
        noise, state = step(zeros, state)
        sample = np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(noise)])
        want = np.sqrt(eta / (1 + t) ** gamma)
        np.testing.assert_allclose(np.std(sample), want, rtol=0.02)
        assert abs(np.mean(sample)) < 0.02 * want
    assert int(state.count) == 10


def test_add_noise_is_added_and_deterministic():
    g = as_jnp(tree(10))
    zeros = jax.tree.map(jnp.zeros_like, g)
    tx = gradtx.add_noise(0.1, 0.55, seed=42)
    state = tx.init(g)
    update = jax.jit(tx.update)
    noisy, next_state = update(g, state)
    noise, _ = update(zeros, state)
    again, _ = update(g, state)
    for k in g:
        np.testing.assert_allclose(noisy[k] - noise[k], g[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(again[k], noisy[k])
    second, _ = update(g, next_state)
    other_seed, _ = update(g, gradtx.add_noise(0.1, 0.55, seed=43).init(g))
    assert not np.allclose(second["dense"], noisy["dense"])
    assert not np.allclose(other_seed["dense"], noisy["dense"])


def test_add_noise_bf16():
    g = as_jnp(tree(11), jnp.bfloat16)
    tx = gradtx.add_noise(0.01, 0.55, seed=1)
    out, state = jax.jit(tx.update)(g, tx.init(g))
    assert {x.dtype for x in jax.tree.leaves(out)} == {jnp.dtype(jnp.bfloat16)}
    assert state.rng_key.dtype == jnp.uint32


# ---- per_example_global_norm_clip ------------------------------------------------------------


def test_per_example_global_norm_clip_matches_reference():
    rng = np.random.default_rng(12)
    scales = np.asarray([0.01, 0.1, 1.0, 3.0, 10.0, 0.5])[:, None]
    g = {
        "w": scales[:, :, None] * rng.standard_normal((6, 4, 3)),
        "b": scales * rng.standard_normal((6, 3)),
        "s": scales[:, 0] * rng.standard_normal(6),
    }
    params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3), "s": jnp.zeros(())}
    tx = gradtx.per_example_global_norm_clip(1.0)
    out, _ = jax.jit(tx.update)(as_jnp(g), tx.init(params), params)
    want = reference.per_example_clip_sum([g["b"], g["s"], g["w"]], 1.0)
    assert_tree_close(out, dict(zip(["b", "s", "w"], want, strict=True)))
    assert out["s"].shape == ()


def test_per_example_global_norm_clip_agrees_with_vmap_of_clip_by_global_norm():
    rng = np.random.default_rng(13)
    g = as_jnp({"w": 3 * rng.standard_normal((8, 5)), "b": rng.standard_normal((8, 2))})
    summed, _ = jax.jit(gradtx.per_example_global_norm_clip(2.0).update)(g, gradtx.EmptyState())
    clip = gradtx.clip_by_global_norm(2.0)
    each = jax.jit(jax.vmap(lambda e: clip.update(e, gradtx.EmptyState())[0]))(g)
    for k in g:
        np.testing.assert_allclose(summed[k], np.sum(np.asarray(each[k]), axis=0), rtol=1e-5)


@pytest.mark.parametrize(
    ("g", "message"),
    [
        (
            {"a": jnp.ones((4, 2)), "b": jnp.ones((3, 2))},
            "per_example_global_norm_clip: updates['b'] has batch size 3, but updates['a'] has batch size 4; every leaf needs the same leading batch axis.",
        ),
        (
            {"a": jnp.ones((4, 2)), "b": jnp.ones(())},
            "per_example_global_norm_clip: updates['b'] has shape (); per-example gradients need a leading batch axis on every leaf.",
        ),
    ],
)
def test_per_example_global_norm_clip_needs_a_batch_axis(g, message):
    with pytest.raises(ValueError) as info:
        gradtx.per_example_global_norm_clip(1.0).update(g, gradtx.EmptyState())
    assert str(info.value) == message


# ---- normalize_by_update_norm ----------------------------------------------------------------


@pytest.mark.parametrize(("scale_factor", "eps"), [(1.0, 1e-6), (-0.5, 0.1)])
def test_normalize_by_update_norm_matches_reference(scale_factor, eps):
    g = tree(14)
    tx = gradtx.normalize_by_update_norm(scale_factor, eps)
    out, _ = jax.jit(tx.update)(as_jnp(g), tx.init(None))
    want = reference.normalize_by_norm(list(g.values()), scale_factor, eps)
    assert_tree_close(out, dict(zip(g, want, strict=True)))


def test_normalize_by_update_norm_trajectory_and_zero_updates():
    grads = [tree(s) for s in range(50, 62)]
    got = sgd_trajectory(gradtx.normalize_by_update_norm(2.0), tree(15), grads, 0.1)
    theta, want = tree(15), []
    for g in grads:
        u = dict(zip(g, reference.normalize_by_norm(list(g.values()), 2.0), strict=True))
        theta = {k: theta[k] - 0.1 * u[k] for k in theta}
        want.append(theta)
    assert_tree_trajectories_close(got, want)
    zeros = as_jnp(jax.tree.map(np.zeros_like, tree(0)), jnp.bfloat16)
    out, _ = jax.jit(gradtx.normalize_by_update_norm().update)(zeros, gradtx.EmptyState())
    for x in jax.tree.leaves(out):
        assert x.dtype == jnp.bfloat16
        np.testing.assert_array_equal(x.astype(jnp.float32), np.zeros(x.shape))


# ---- construction errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (
            lambda: gradtx.clip_by_block_rms(0.0),
            ValueError,
            "clip_by_block_rms: `threshold` must be > 0, got 0.0.",
        ),
        (
            lambda: gradtx.adaptive_grad_clip(-0.1),
            ValueError,
            "adaptive_grad_clip: `clipping` must be > 0, got -0.1.",
        ),
        (
            lambda: gradtx.adaptive_grad_clip(0.1, eps=-1.0),
            ValueError,
            "adaptive_grad_clip: `eps` must be >= 0, got -1.0.",
        ),
        (
            lambda: gradtx.add_noise(-0.1, 0.55, 0),
            ValueError,
            "add_noise: `eta` must be >= 0, got -0.1.",
        ),
        (
            lambda: gradtx.add_noise(0.1, float("inf"), 0),
            ValueError,
            "add_noise: `gamma` must be finite, got inf.",
        ),
        (
            lambda: gradtx.add_noise(0.1, 0.55, 1.5),
            TypeError,
            "add_noise: `seed` must be an integer, got 1.5.",
        ),
        (
            lambda: gradtx.add_noise(0.1, 0.55, True),
            TypeError,
            "add_noise: `seed` must be an integer, got True.",
        ),
        (
            lambda: gradtx.per_example_global_norm_clip(0),
            ValueError,
            "per_example_global_norm_clip: `l2_norm_clip` must be > 0, got 0.",
        ),
        (
            lambda: gradtx.normalize_by_update_norm(float("nan")),
            ValueError,
            "normalize_by_update_norm: `scale_factor` must be finite, got nan.",
        ),
        (
            lambda: gradtx.normalize_by_update_norm(1.0, eps=-1e-6),
            ValueError,
            "normalize_by_update_norm: `eps` must be >= 0, got -1e-06.",
        ),
    ],
)
def test_bad_hyperparameters(factory, error, message):
    with pytest.raises(error) as info:
        factory()
    assert str(info.value) == message
