"""Muon against the float64 transcription in `reference.py` and the Newton-Schulz properties."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference

A, B, C = 3.4445, -4.7750, 2.0315


def quintic(s, steps=5):
    """What `steps` Newton-Schulz steps do to one singular value of the normalised matrix."""
    for _ in range(steps):
        s = A * s + B * s**3 + C * s**5
    return s


def muon_direction(g, **kwargs):
    tx = gradtx.scale_by_muon(**kwargs)
    g = jnp.asarray(g)
    return tx.update(g, tx.init(g))[0]


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (8, 8), (1, 5), (5, 1)])
def test_newton_schulz_matches_reference(shape, maybe_jit):
    g = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    # With beta = 0 the momentum is the gradient itself: the direction is the shape factor
    # times the Newton-Schulz output.
    got = maybe_jit(lambda g: muon_direction(g, beta=0.0))(g)
    scale = math.sqrt(max(1.0, shape[1] / shape[0]))
    want = scale * reference.newton_schulz(g)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-5, atol=2e-6)


def test_singular_values_follow_the_quintic_map_and_land_in_its_band():
    rng = np.random.default_rng(7)
    u, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    v, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    s = np.geomspace(3e-3, 1.0, 12)  # spectrum of X_0 = D / ||D||_F up to the scale below
    d = 5.0 * (u * s) @ v[:12] / np.linalg.norm(s)
    got = np.asarray(muon_direction(d.astype(np.float32), beta=0.0), np.float64)
    sv = np.linalg.svd(got, compute_uv=False) / math.sqrt(20 / 12)
    want = np.sort(quintic(s / np.linalg.norm(s)))[::-1]
    np.testing.assert_allclose(sv, want, rtol=1e-4, atol=1e-5)
    # Not orthogonal: the documented band [0.68, 1.21], with both ends nearly reached.
    assert 0.675 < sv.min() < 0.75 and 1.1 < sv.max() < 1.21
    # The singular vectors are those of D: got = U q(S) V^T.
    np.testing.assert_allclose(
        got / math.sqrt(20 / 12), (u * quintic(s / np.linalg.norm(s))) @ v[:12], atol=1e-5
    )


def test_quintic_band_of_the_docstring():
    s = np.geomspace(3e-3, 1.0, 100001)
    q = quintic(s)
    assert 0.68 < q.min() < 0.683 and 1.20 < q.max() < 1.21
    assert 0.46 < quintic(1e-3) < 0.48


def muon_params(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return {
        "tall": jnp.asarray(rng.standard_normal((5, 3)), dtype),
        "wide": jnp.asarray(rng.standard_normal((3, 6)), dtype),
        "bias": jnp.asarray(rng.standard_normal(3), dtype),
    }


def run_muon(tx, params, steps, seed=1):
    rng = np.random.default_rng(seed)
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(steps)]
    state = tx.init(params)

    @jax.jit
    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return gradtx.apply_updates(params, updates), state

    out = []
    for g in grads:
        g = {k: jnp.asarray(x, params[k].dtype) for k, x in g.items()}
        params, state = step(params, state, g)
        out.append(params)
    return out, grads


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_trajectory_matches_reference(nesterov):
    sched = gradtx.linear_schedule(0.05, 0.01, 12)
    ref_sched = lambda t: reference.linear(t, 0.05, 0.01, 12)
    tx = gradtx.muon(
        sched,
        weight_decay=0.1,
        nesterov=nesterov,
        beta=0.9,
        adam_learning_rate=1e-2,
        adam_b1=0.8,
        adam_weight_decay=0.05,
    )
    params = muon_params()
    got, grads = run_muon(tx, params, 12)
    for name in ("tall", "wide"):
        want = reference.muon(
            params[name], [g[name] for g in grads], ref_sched, 0.9, nesterov, weight_decay=0.1
        )
        for t, (a, e) in enumerate(zip(got, want, strict=True)):
            np.testing.assert_allclose(a[name], e, rtol=1e-5, atol=1e-5, err_msg=f"{name} {t}")
    want = reference.adam(
        params["bias"], [g["bias"] for g in grads], 1e-2, b1=0.8, weight_decay=0.05
    )
    for t, (a, e) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a["bias"], e, rtol=1e-5, atol=1e-6, err_msg=f"bias {t}")


@pytest.mark.parametrize(
    "mask",
    [
        {"tall": True, "wide": False, "bias": False},
        lambda p: jax.tree.map(lambda x: x.shape == (5, 3), p),
    ],
)
def test_muon_mask_sends_a_matrix_to_adamw(mask):
    params = muon_params()
    got, grads = run_muon(gradtx.muon(0.02, muon_mask=mask), params, 10, seed=3)
    want_tall = reference.muon(params["tall"], [g["tall"] for g in grads], 0.02)
    want_wide = reference.adam(params["wide"], [g["wide"] for g in grads], 0.02)
    np.testing.assert_allclose(got[-1]["tall"], want_tall[-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[-1]["wide"], want_wide[-1], rtol=1e-5, atol=1e-6)
    state = gradtx.muon(0.02, muon_mask=mask).init(params)
    mu = state.inner_states["muon"].inner_state[0].mu
    assert [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(mu)] == [
        "['tall']"
    ]


def test_bf16_is_computed_in_float32():
    params = muon_params(jnp.bfloat16)
    g = jnp.asarray(np.random.default_rng(4).standard_normal((3, 6)), jnp.bfloat16)
    tx = gradtx.scale_by_muon()
    state = tx.init(params["wide"])
    u, state = tx.update(g, state)
    assert u.dtype == jnp.bfloat16 and state.mu.dtype == jnp.bfloat16
    g64 = np.asarray(g, np.float64)
    d = 0.95 * (0.05 * g64) + 0.05 * g64
    want = math.sqrt(2) * reference.newton_schulz(d)
    # float32 arithmetic, one rounding to bfloat16 at the end: within half a bfloat16 ulp.
    np.testing.assert_allclose(np.asarray(u, np.float64), want, rtol=2**-8 + 1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (
            lambda: gradtx.scale_by_muon(ns_steps=0),
            ValueError,
            "scale_by_muon: `ns_steps` must be an integer > 0, got 0.",
        ),
        (
            lambda: gradtx.scale_by_muon(beta=1.0),
            ValueError,
            "scale_by_muon: `beta` must be in [0, 1), got 1.0.",
        ),
        (
            lambda: gradtx.scale_by_muon(ns_coeffs=(1.0, 2.0)),
            ValueError,
            "scale_by_muon: `ns_coeffs` must be three numbers (a, b, c) of the polynomial a*X + b*(X X^T) X + c*(X X^T)^2 X, got (1.0, 2.0).",
        ),
        (
            lambda: gradtx.muon(0.02, ns_coeffs=(1.0, float("inf"), 2.0)),
            ValueError,
            "scale_by_muon: `ns_coeffs[1]` must be finite, got inf.",
        ),
        (
            lambda: gradtx.scale_by_muon().init({"b": jnp.zeros(3)}),
            ValueError,
            "scale_by_muon: params['b'] has shape (3,), but Muon orthogonalises 2-D matrices only. Use `gradtx.muon`, which sends other leaves to AdamW, or reshape the leaf to 2-D.",
        ),
        (
            lambda: gradtx.muon(0.02, muon_mask={"b": True}).init({"b": jnp.zeros(3)}),
            ValueError,
            "muon: muon_mask['b'] is True, but params['b'] has shape (3,); Muon needs 2-D leaves. Set it to False to use AdamW.",
        ),
        (
            lambda: gradtx.muon(0.02, muon_mask={"w": jnp.array(True)}).init(
                {"w": jnp.zeros((2, 2))}
            ),
            TypeError,
            "muon: muon_mask['w'] is Array(True, dtype=bool); the mask must hold Python bools (it decides which leaves go to Muon when the step is traced, so it cannot be an array).",
        ),
        (
            lambda: gradtx.muon(0.02, muon_mask={"v": True}).init({"w": jnp.zeros((2, 2))}),
            ValueError,
            "muon: `muon_mask` and `params` have different tree structures: params['w'] has no counterpart in `muon_mask`. Give one bool per parameter leaf, or a function of the params returning such a tree.",
        ),
    ],
)
def test_errors(factory, error, message):
    with pytest.raises(error) as info:
        factory()
    assert str(info.value) == message


def test_muon_needs_params_for_weight_decay_like_adamw():
    tx = gradtx.muon(0.02)
    params = muon_params()
    with pytest.raises(ValueError) as info:
        tx.update(params, tx.init(params))
    assert str(info.value) == (
        "add_decayed_weights: this transformation needs the current parameters. Call "
        "`update(updates, state, params)`, passing `params` as the third argument."
    )
