"""Trust ratio, LAMB, LARS, NovoGrad and Fromage against `reference.py`, leaf by leaf."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, tree_trajectories

# Layer-wise methods take norms over whole leaves: run leaves of ranks 2, 1 and 0 together.
SHAPES = {"matrix": (4, 3), "vector": (5,), "scalar": ()}
STEPS = 12


def problem(seed):
    rng = np.random.default_rng(seed)
    theta0 = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(STEPS)]
    return theta0, grads


def check_against(tx, ref, seed, **ref_kwargs):
    theta0, grads = problem(seed)
    got = tree_trajectories(tx, theta0, grads)
    for k in SHAPES:
        want = ref(theta0[k], [g[k] for g in grads], **ref_kwargs)
        assert_trajectories_close(got[k], want, rtol=1e-5, atol=1e-6)


def schedule_pair():
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 0.1, 3, 12, 0.01)
    return sched, lambda t: reference.warmup_cosine(t, 0.0, 0.1, 3, 12, 0.01)


# ---- scale_by_trust_ratio ----------------------------------------------------------------------


def test_trust_ratio_is_param_norm_over_update_norm_per_leaf():
    params = {"a": jnp.array([[3.0, 4.0]]), "b": jnp.array(-2.0), "c": jnp.array([1.0, 1.0])}
    updates = {"a": jnp.array([[0.0, 0.5]]), "b": jnp.array(4.0), "c": jnp.array([2.0, 0.0])}
    out, _ = gradtx.scale_by_trust_ratio().update(updates, gradtx.EmptyState(), params)
    np.testing.assert_allclose(out["a"], [[0.0, 5.0]], rtol=1e-6)  # ratio 5 / 0.5
    np.testing.assert_allclose(out["b"], 2.0, rtol=1e-6)  # ratio 2 / 4
    np.testing.assert_allclose(out["c"], [np.sqrt(2.0), 0.0], rtol=1e-6)  # ratio sqrt(2) / 2


def test_trust_ratio_is_one_when_a_norm_is_zero():
    params = {"zero_param": jnp.zeros(3), "zero_update": jnp.ones(3)}
    updates = {"zero_param": jnp.array([1.0, -2.0, 3.0]), "zero_update": jnp.zeros(3)}
    tx = gradtx.scale_by_trust_ratio(trust_coefficient=0.01)
    out, _ = tx.update(updates, tx.init(params), params)
    np.testing.assert_array_equal(out["zero_param"], [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(out["zero_update"], np.zeros(3))


def test_trust_ratio_min_norm_coefficient_eps_and_mask():
    params = {"w": jnp.array([1e-8, 0.0]), "b": jnp.array([3.0, 4.0])}
    updates = {"w": jnp.array([2.0, 0.0]), "b": jnp.array([0.0, 1.0])}
    tx = gradtx.scale_by_trust_ratio(
        min_norm=0.5, trust_coefficient=0.1, eps=1.0, mask={"w": True, "b": False}
    )
    out, _ = tx.update(updates, tx.init(params), params)
    np.testing.assert_allclose(out["w"], [2.0 * 0.1 * 0.5 / (2.0 + 1.0), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(out["b"], [0.0, 1.0])  # masked out: unchanged


def test_trust_ratio_has_a_finite_gradient_at_zero():
    def f(p):
        out, _ = gradtx.scale_by_trust_ratio().update({"w": jnp.ones(2)}, gradtx.EmptyState(), p)
        return jnp.sum(out["w"])

    grad = jax.grad(f)({"w": jnp.zeros(2)})
    assert np.all(np.isfinite(grad["w"]))


def test_trust_ratio_keeps_bf16_and_needs_params():
    params = {"w": jnp.ones((2, 2), jnp.bfloat16)}
    tx = gradtx.scale_by_trust_ratio()
    out, _ = tx.update(params, tx.init(params), params)
    assert out["w"].dtype == jnp.bfloat16
    with pytest.raises(ValueError) as info:
        tx.update(params, tx.init(params))
    assert str(info.value) == (
        "scale_by_trust_ratio: this transformation needs the current parameters. Call "
        "`update(updates, state, params)`, passing `params` as the third argument."
    )


# ---- LAMB, LARS --------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1, "b1": 0.8, "b2": 0.95, "eps": 1e-4}])
def test_lamb_matches_reference(kwargs):
    check_against(gradtx.lamb(1e-2, **kwargs), reference.lamb, 0, learning_rate=1e-2, **kwargs)


def test_lamb_with_schedule_matches_reference():
    sched, ref_sched = schedule_pair()
    check_against(
        gradtx.lamb(sched, weight_decay=0.01),
        reference.lamb,
        1,
        learning_rate=ref_sched,
        weight_decay=0.01,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"trust_coefficient": 0.02, "momentum": 0.5, "nesterov": True},
        {"trust_coefficient": 0.01, "eps": 1e-3, "momentum": 0.0},
    ],
)
def test_lars_without_weight_decay_matches_the_paper(kwargs):
    check_against(
        gradtx.lars(0.5, **kwargs),
        reference.lars,
        2,
        learning_rate=0.5,
        paper_denominator=True,
        **kwargs,
    )


def test_lars_with_weight_decay_divides_by_the_norm_of_the_decayed_gradient():
    sched, ref_sched = schedule_pair()
    kwargs = {"weight_decay": 0.5, "trust_coefficient": 0.02}
    check_against(
        gradtx.lars(sched, **kwargs), reference.lars, 3, learning_rate=ref_sched, **kwargs
    )
    # The paper's ||g|| + wd ||w|| gives a different trajectory (documented difference).
    theta0, grads = problem(3)
    g = [step["matrix"] for step in grads]
    ours = reference.lars(theta0["matrix"], g, ref_sched, **kwargs)
    paper = reference.lars(theta0["matrix"], g, ref_sched, paper_denominator=True, **kwargs)
    assert np.max(np.abs(ours[-1] - paper[-1])) > 1e-4


def test_lars_masks():
    params = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([1.0, 0.0])}
    grads = {"w": jnp.array([0.0, 1.0]), "b": jnp.array([0.0, 1.0])}
    tx = gradtx.lars(
        1.0,
        weight_decay=1.0,
        weight_decay_mask={"w": True, "b": False},
        trust_coefficient=1.0,
        trust_ratio_mask={"w": True, "b": False},
        momentum=0.0,
    )
    updates, _ = tx.update(grads, tx.init(params), params)
    # w: d = g + w = (3, 5), ratio 5 / sqrt(34); b: neither decayed nor rescaled.
    np.testing.assert_allclose(updates["w"], -5 / np.sqrt(34) * np.array([3.0, 5.0]), rtol=1e-6)
    np.testing.assert_array_equal(updates["b"], [0.0, -1.0])


# ---- NovoGrad ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"b1": 0.5, "b2": 0.9, "eps": 1e-3, "eps_root": 1e-4}, {"weight_decay": 0.1}],
)
def test_novograd_matches_reference(kwargs):
    check_against(
        gradtx.novograd(1e-2, **kwargs), reference.novograd, 4, learning_rate=1e-2, **kwargs
    )


def test_novograd_with_schedule_matches_reference():
    sched, ref_sched = schedule_pair()
    check_against(gradtx.novograd(sched), reference.novograd, 5, learning_rate=ref_sched)


def test_novograd_keeps_one_second_moment_per_leaf():
    params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros(32), "s": jnp.zeros(())}
    state = gradtx.scale_by_novograd().init(params)
    assert jax.tree.map(jnp.shape, state.nu) == {"w": (), "b": (), "s": ()}
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    param_bytes = (64 * 32 + 32 + 1) * 4
    assert state_bytes == param_bytes + 3 * 4 + 4  # momentum, three scalars, count


def test_novograd_needs_params_only_for_weight_decay():
    params = {"w": jnp.ones(3)}
    tx = gradtx.scale_by_novograd()
    updates, _ = tx.update({"w": jnp.array([3.0, 0.0, 4.0])}, tx.init(params))
    np.testing.assert_allclose(updates["w"], np.array([3.0, 0.0, 4.0]) / (5.0 + 1e-8), rtol=1e-6)
    tx = gradtx.scale_by_novograd(weight_decay=0.1)
    with pytest.raises(
        ValueError, match=r"^scale_by_novograd: this transformation needs the current parameters\."
    ):
        tx.update(params, tx.init(params))


# ---- Fromage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("min_norm", [1e-6, 0.5])
def test_fromage_matches_reference(min_norm):
    check_against(
        gradtx.fromage(0.05, min_norm), reference.fromage, 6, learning_rate=0.05, min_norm=min_norm
    )


def test_fromage_with_schedule_matches_reference():
    sched, ref_sched = schedule_pair()
    check_against(gradtx.fromage(sched), reference.fromage, 7, learning_rate=ref_sched)


def test_fromage_keeps_the_norm_for_orthogonal_gradients():
    # (w - lr ||w|| g / ||g||) has norm ||w|| sqrt(1 + lr^2) when g is orthogonal to w.
    params = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]])}
    grads = {"w": jnp.array([[0.0, 2.0], [-7.0, 0.0]])}
    tx = gradtx.fromage(0.3)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = gradtx.apply_updates(params, updates)
    np.testing.assert_allclose(np.linalg.norm(new["w"]), 5.0, rtol=1e-6)


def test_fromage_small_learning_rate_shrink_is_accurate():
    # 1 / sqrt(1 + lr^2) - 1 is about -lr^2 / 2; formed naively in float32 it would be 0 for
    # lr = 1e-4 and the shrink would be lost.
    params = {"w": jnp.ones(4)}
    grads = {"w": jnp.zeros(4)}  # no gradient: only the shrink acts (trust ratio 1)
    tx = gradtx.fromage(1e-4)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], np.full(4, -0.5e-8), rtol=1e-4)


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: gradtx.scale_by_trust_ratio(min_norm=-1.0),
            "scale_by_trust_ratio: `min_norm` must be >= 0, got -1.0.",
        ),
        (
            lambda: gradtx.lars(0.1, trust_coefficient=-1e-3),
            "scale_by_trust_ratio: `trust_coefficient` must be >= 0, got -0.001.",
        ),
        (lambda: gradtx.lars(0.1, momentum=1.0), "trace: `decay` must be in [0, 1), got 1.0."),
        (lambda: gradtx.lamb(0.1, b2=1.0), "scale_by_adam: `b2` must be in [0, 1), got 1.0."),
        (
            lambda: gradtx.novograd(0.1, b2=-0.5),
            "scale_by_novograd: `b2` must be in [0, 1), got -0.5.",
        ),
        (
            lambda: gradtx.novograd(0.1, weight_decay=-1.0),
            "scale_by_novograd: `weight_decay` must be >= 0, got -1.0.",
        ),
        (lambda: gradtx.fromage(float("inf")), "fromage: `learning_rate` must be finite, got inf."),
    ],
)
def test_bad_hyperparameters(factory, message):
    with pytest.raises(ValueError) as info:
        factory()
    assert str(info.value) == message


def test_novograd_state_built_for_other_params_names_the_leaf():
    tx = gradtx.novograd(0.1)
    state = tx.init({"w": jnp.zeros((2, 3))})
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.zeros((3, 2))}, state, {"w": jnp.zeros((3, 2))})
    assert str(info.value) == (
        "scale_by_novograd: updates['w'] has shape (3, 2), but state.mu['w'] has shape (2, 3). The "
        "optimizer state was built for other parameters: call `init` with the parameters you are "
        "updating."
    )
