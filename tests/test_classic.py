"""Adagrad, RMSProp, Adadelta, Adamax, AMSGrad, NAdam(W), RAdam, Rprop, signSGD, Signum, noisy SGD.

Expected values come from `torch.optim` (golden trajectories recorded by
`tests/golden/make_golden_classic.py`, read here with NumPy only) or, for what PyTorch lacks, from
the float64 transcriptions in `tests/reference.py`.

Tolerances for the golden runs are those of `test_golden_torch.py` (rtol = atol = 1e-6: gradtx
runs in float32 from the same float32 inputs the float64 reference used; parameters stay below
2.5 in magnitude). Measured when this file was written, max |gradtx - torch| over every step
and element: Adagrad 2.3e-7, RMSProp (4 cases) <= 2.7e-7, Adadelta <= 3.6e-7, Adamax 2.6e-7,
AMSGrad 2.2e-7, NAdam 1.6e-7, NAdamW 2.1e-7, RAdam 2.0e-7, Rprop 2.2e-7. Each deliberate
difference from PyTorch pinned here moves the trajectory by more than 100x ATOL (measured:
eps inside the root in RMSProp 2.1e-2, Optax's AMSGrad form 2.0e-2, PyTorch's default NAdam
schedule 3.9e-2, RAdam's eps placement with eps = 1e-2 2.8e-4).
"""

from __future__ import annotations

import functools
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, random_grads, trajectory
from tests.test_golden_torch import ATOL, LEAVES, _assert_traj_close, _case, _max_abs_diff, _run

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "torch_golden_classic.npz"
THETA0 = np.random.default_rng(10).standard_normal((5, 3))


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


def _ref(fn, golden, case, **kwargs):
    """A reference.py rule run on a golden case's data, per leaf, as {leaf: (steps, ...)}."""
    params0, grads, _, hp = _case(golden, case)
    return {k: np.stack(fn(params0[k], list(grads[k]), hp["lr"], **kwargs), axis=0) for k in LEAVES}


def test_golden_metadata(golden):
    assert str(golden["meta/torch_version"]).startswith("2.")
    for case in golden["meta/cases"]:
        assert golden[f"{case}/grads/w"].shape[0] >= 12
        assert golden[f"{case}/grads/w"].dtype == np.float32


# ---- Adagrad ----------------------------------------------------------------------------------


def test_adagrad_matches_torch(golden):
    params0, grads, traj, hp = _case(golden, "adagrad")
    tx = gradtx.adagrad(hp["lr"], hp["initial_accumulator_value"], hp["eps"])
    _assert_traj_close(_run(tx, params0, grads), traj)


def test_adagrad_lr_decay_and_l2_as_documented(golden):
    # torch's lr_decay is the schedule lr / (1 + t * lr_decay), its weight_decay an L2 term.
    params0, grads, traj, hp = _case(golden, "adagrad_lr_decay_l2")
    lr, decay = hp["lr"], hp["lr_decay"]
    tx = gradtx.chain(
        gradtx.add_decayed_weights(hp["weight_decay"]),
        gradtx.adagrad(
            lambda t: lr / (1 + decay * t.astype(jnp.float32)),
            hp["initial_accumulator_value"],
            hp["eps"],
        ),
    )
    _assert_traj_close(_run(tx, params0, grads), traj)
    # Neither part is a no-op on this data.
    plain = gradtx.adagrad(lr, hp["initial_accumulator_value"], hp["eps"])
    assert _max_abs_diff(_run(plain, params0, grads), traj) > 100 * ATOL


def test_adagrad_zero_gradient_without_eps_is_zero_not_nan():
    tx = gradtx.scale_by_rss(initial_accumulator_value=0.0, eps=0.0)
    params = {"w": jnp.zeros(3)}
    u, _ = tx.update({"w": jnp.array([0.0, 2.0, -3.0])}, tx.init(params))
    np.testing.assert_array_equal(u["w"], [0.0, 1.0, -1.0])


# ---- RMSProp ----------------------------------------------------------------------------------

RMSPROP_CASES = [
    ("rmsprop", False),
    ("rmsprop_centered", True),
    ("rmsprop_momentum", False),
    ("rmsprop_centered_momentum", True),
]


@pytest.mark.parametrize(("case", "centered"), RMSPROP_CASES)
def test_rmsprop_matches_torch(golden, case, centered):
    params0, grads, traj, hp = _case(golden, case)
    tx = gradtx.rmsprop(
        hp["lr"],
        decay=hp["alpha"],
        eps=hp["eps"],
        centered=centered,
        momentum=hp["momentum"] or None,
    )
    _assert_traj_close(_run(tx, params0, grads), traj)


@pytest.mark.parametrize(("case", "centered"), RMSPROP_CASES[:2])
def test_rmsprop_eps_in_sqrt_is_optax_rule_not_torch(golden, case, centered):
    params0, grads, traj, hp = _case(golden, case)
    tx = gradtx.rmsprop(hp["lr"], hp["alpha"], hp["eps"], eps_in_sqrt=True, centered=centered)
    got = _run(tx, params0, grads)
    assert _max_abs_diff(got, traj) > 100 * ATOL
    want = _ref(
        reference.rmsprop, golden, case, decay=hp["alpha"], eps=hp["eps"], eps_in_sqrt=True,
        centered=centered,
    )  # fmt: skip
    _assert_traj_close(got, want)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"momentum": 0.9, "nesterov": True},
        {"momentum": 0.9, "nesterov": True, "centered": True, "initial_scale": 0.5},
        {"momentum": 0.5, "eps_in_sqrt": True, "decay": 0.95},
    ],
)
def test_rmsprop_matches_reference_with_schedule(kwargs):
    sched = gradtx.linear_schedule(0.05, 0.005, 10)
    grads = random_grads(21)
    got = trajectory(gradtx.rmsprop(sched, eps=1e-3, **kwargs), THETA0, grads)
    ref_lr = lambda t: reference.linear(t, 0.05, 0.005, 10)
    want = reference.rmsprop(THETA0, grads, ref_lr, eps=1e-3, **kwargs)
    assert_trajectories_close(got, want)


def test_centered_rmsprop_clamps_negative_round_off():
    # With constant gradients nu_t - mu_t^2 tends to 0, and in float32 its round-off can be < 0,
    # where sqrt would give NaN. Start from such a state: nu = mu^2 (1 - 1e-6) with mu = g.
    g = jnp.asarray(np.random.default_rng(0).standard_normal(4096), jnp.float32)
    tx = gradtx.scale_by_stddev(0.9)
    state = tx.init({"w": g})
    state = state._replace(mu={"w": g}, nu={"w": g * g * jnp.float32(1 - 1e-6)})
    u, new = jax.jit(tx.update)({"w": g}, state)
    raw = new.nu["w"] - new.mu["w"] ** 2
    assert int(jnp.sum(raw < 0)) > 0  # the case arises...
    assert bool(jnp.all(jnp.isfinite(u["w"])))  # ...and gives finite updates


# ---- Adadelta, Adamax --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["adadelta", "adadelta_l2"])
def test_adadelta_matches_torch(golden, case):
    params0, grads, traj, hp = _case(golden, case)
    tx = gradtx.adadelta(hp["lr"], hp["rho"], hp["eps"], hp.get("weight_decay", 0.0))
    _assert_traj_close(_run(tx, params0, grads), traj)


def test_adadelta_without_decay_needs_no_params():
    tx = gradtx.adadelta()
    params = {"w": jnp.ones(2)}
    u, _ = tx.update({"w": jnp.ones(2)}, tx.init(params))
    # First step: sqrt(eps) / sqrt(0.1 + eps) * g.
    np.testing.assert_allclose(u["w"], -np.sqrt(1e-6) / np.sqrt(0.1 + 1e-6), rtol=1e-6)


def test_adamax_matches_torch(golden):
    params0, grads, traj, hp = _case(golden, "adamax")
    tx = gradtx.adamax(hp["lr"], hp["b1"], hp["b2"], hp["eps"])
    _assert_traj_close(_run(tx, params0, grads), traj)


# ---- AMSGrad ----------------------------------------------------------------------------------


def test_amsgrad_torch_form_matches_torch(golden):
    params0, grads, traj, hp = _case(golden, "amsgrad")
    tx = gradtx.amsgrad(hp["lr"], hp["b1"], hp["b2"], hp["eps"], correct_after_max=True)
    _assert_traj_close(_run(tx, params0, grads), traj)


@pytest.mark.parametrize(
    ("form", "kwargs"),
    [
        ("optax", {}),
        ("paper", {"bias_correction_mu": False, "bias_correction_nu": False}),
        ("torch", {"correct_after_max": True}),
    ],
)
def test_amsgrad_forms_match_reference_and_differ(golden, form, kwargs):
    params0, grads, traj, hp = _case(golden, "amsgrad")
    got = _run(gradtx.amsgrad(hp["lr"], hp["b1"], hp["b2"], hp["eps"], **kwargs), params0, grads)
    want = _ref(reference.amsgrad, golden, "amsgrad", b1=hp["b1"], b2=hp["b2"], form=form)
    _assert_traj_close(got, want)
    if form != "torch":  # the shrinking gradients make the maximum matter
        assert _max_abs_diff(got, traj) > 100 * ATOL


def test_amsgrad_reference_torch_form_is_torch(golden):
    # Pins the transcription of PyTorch's form (float64 against float64).
    _, _, traj, hp = _case(golden, "amsgrad")
    want = _ref(reference.amsgrad, golden, "amsgrad", b1=hp["b1"], b2=hp["b2"], form="torch")
    _assert_traj_close(want, traj, rtol=1e-12, atol=1e-13)


# ---- NAdam, NAdamW ------------------------------------------------------------------------------


def test_nadam_matches_torch_with_constant_momentum(golden):
    params0, grads, traj, hp = _case(golden, "nadam")
    assert 0.96 ** hp["momentum_decay"] == 0.0  # torch's mu_t is exactly b1
    tx = gradtx.nadam(hp["lr"], hp["b1"], hp["b2"], hp["eps"])
    got = _run(tx, params0, grads)
    _assert_traj_close(got, traj)
    want = _ref(reference.adam, golden, "nadam", b1=hp["b1"], b2=hp["b2"], nesterov=True)
    _assert_traj_close(got, want)


def test_nadam_relation_to_torch_default_schedule(golden):
    params0, grads, traj, hp = _case(golden, "nadam_torch_default")
    assert hp["momentum_decay"] == 4e-3
    # gradtx.nadam is not torch's default NAdam...
    got = _run(gradtx.nadam(hp["lr"], hp["b1"], hp["b2"], hp["eps"]), params0, grads)
    assert _max_abs_diff(got, traj) > 1000 * ATOL
    # ...which is Dozat's momentum schedule, transcribed in reference.py (float64 vs float64),
    kw = {"b1": hp["b1"], "b2": hp["b2"], "eps": hp["eps"]}
    sched = _ref(reference.nadam_momentum_schedule, golden, "nadam_torch_default", **kw)
    _assert_traj_close(sched, traj, rtol=1e-12, atol=1e-13)
    # ...and momentum_decay = 0 does not give Optax's rule (mu_t = b1 / 2), a huge one does.
    nesterov = _ref(reference.adam, golden, "nadam", nesterov=True, **kw)
    psi0 = _ref(reference.nadam_momentum_schedule, golden, "nadam", momentum_decay=0.0, **kw)
    psi_inf = _ref(reference.nadam_momentum_schedule, golden, "nadam", momentum_decay=1e6, **kw)
    assert _max_abs_diff(psi0, nesterov) > 1000 * ATOL
    _assert_traj_close(psi_inf, nesterov, rtol=1e-12, atol=1e-13)


def test_nadamw_matches_torch_decoupled(golden):
    params0, grads, traj, hp = _case(golden, "nadamw")
    tx = gradtx.nadamw(hp["lr"], hp["b1"], hp["b2"], hp["eps"], weight_decay=hp["weight_decay"])
    _assert_traj_close(_run(tx, params0, grads), traj)


# ---- RAdam ------------------------------------------------------------------------------------


def _rho(t, b2):
    return 2 / (1 - b2) - 1 - 2 * t * b2**t / (1 - b2**t)


def test_radam_matches_torch(golden):
    params0, grads, traj, hp = _case(golden, "radam")
    steps = grads["w"].shape[0]
    # Both branches run: momentum SGD for t <= 5, rectified from t = 6 (rho_5 = 4.996).
    assert _rho(5, hp["b2"]) < 5 < _rho(6, hp["b2"]) and steps >= 10
    tx = gradtx.radam(hp["lr"], hp["b1"], hp["b2"], hp["eps"])
    _assert_traj_close(_run(tx, params0, grads), traj)


def test_radam_eps_placement_differs_from_torch_as_documented(golden):
    params0, grads, traj, hp = _case(golden, "radam_eps")
    got = _run(gradtx.radam(hp["lr"], hp["b1"], hp["b2"], hp["eps"]), params0, grads)
    kw = {"b1": hp["b1"], "b2": hp["b2"], "eps": hp["eps"]}
    assert _max_abs_diff(got, traj) > 100 * ATOL
    _assert_traj_close(got, _ref(reference.radam, golden, "radam_eps", **kw))
    torch_form = _ref(reference.radam, golden, "radam_eps", eps_form="torch", **kw)
    _assert_traj_close(torch_form, traj, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    "kwargs", [{"nesterov": True}, {"threshold": 8.0, "b2": 0.99}, {"b2": 0.5}]
)
def test_radam_matches_reference(kwargs):
    grads = random_grads(22, steps=14)
    got = trajectory(gradtx.radam(1e-2, **kwargs), THETA0, grads)
    assert_trajectories_close(got, reference.radam(THETA0, grads, 1e-2, **kwargs))


def test_radam_rho_is_accurate_in_float32():
    from gradtx._adam_variants import _radam_rho

    ts = [2, 5, 6, 7, 50, 10**4, 2**31 - 1]
    for b2 in (0.999, 0.99, 0.9):
        want = np.array([_rho(t, b2) for t in ts])
        got = np.asarray(_radam_rho(jnp.array(ts, jnp.int32), b2, jnp.float32)[0], np.float64)
        # A few float32 ulps of max(rho, 1); the direct formula is off by up to 1.3e-2.
        np.testing.assert_array_less(np.abs(got - want), 4e-7 * np.maximum(np.abs(want), 1.0))


# ---- Rprop ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["rprop", "rprop_clamped"])
def test_rprop_matches_torch(golden, case):
    params0, grads, traj, hp = _case(golden, case)
    tx = gradtx.rprop(hp["lr"], hp["eta_minus"], hp["eta_plus"], hp["min"], hp["max"])
    _assert_traj_close(_run(tx, params0, grads), traj)
    steps = np.abs(np.diff(np.concatenate([params0["w"][None], traj["w"]]), axis=0))
    assert np.any(steps == 0)  # some coordinates flipped sign and paused
    if case == "rprop_clamped":  # both clamps bind
        assert np.any(np.isclose(steps, hp["max"])) and np.any(np.isclose(steps, hp["min"]))


# ---- signSGD, Signum, noisy SGD ------------------------------------------------------------------


@pytest.mark.parametrize("beta", [None, 0.0, 0.9])
def test_sign_methods_match_reference(beta):
    sched = gradtx.linear_schedule(0.1, 0.01, 12)
    grads = random_grads(23)
    tx = gradtx.sign_sgd(sched) if beta is None else gradtx.signum(sched, beta)
    want = reference.signum(
        THETA0, grads, lambda t: reference.linear(t, 0.1, 0.01, 12), beta=beta or 0.0
    )
    assert_trajectories_close(trajectory(tx, THETA0, grads), want)


def test_sign_sgd_does_not_move_on_zero_gradient():
    params = {"w": jnp.ones(3)}
    tx = gradtx.sign_sgd(0.1)
    u, _ = tx.update({"w": jnp.array([0.0, 2.0, -1e-30])}, tx.init(params))
    np.testing.assert_array_equal(u["w"], np.float32([0.0, -0.1, 0.1]))


def test_noisy_sgd_without_noise_is_sgd():
    grads = random_grads(24)
    got = trajectory(gradtx.noisy_sgd(0.05, eta=0.0), THETA0, grads)
    assert_trajectories_close(got, reference.sgd(THETA0, grads, 0.05))


NOISE_ETA, NOISE_GAMMA, NOISE_N = 0.3, 0.55, 100_000
NOISE_SHAPES = {"a": (NOISE_N,), "b": (NOISE_N // 1000, 1000)}


@functools.cache
def _noisy_step():
    # One compiled update for every seed: the seed only enters through `init`'s state.
    return jax.jit(gradtx.noisy_sgd(1.0, NOISE_ETA, NOISE_GAMMA).update)


def _noise(seed, grads_list):
    """The noise z with update = -(g + z) (lr = 1) at each step, as float64 arrays."""
    tx = gradtx.noisy_sgd(1.0, NOISE_ETA, NOISE_GAMMA, seed=seed)
    state = tx.init({k: jnp.zeros(s) for k, s in NOISE_SHAPES.items()})
    out = []
    for g in grads_list:
        u, state = _noisy_step()(g, state)
        out.append({k: -np.asarray(u[k], np.float64) - np.asarray(g[k], np.float64) for k in g})
    return out


def test_noisy_sgd_noise_statistics():
    zeros = {k: jnp.zeros(s) for k, s in NOISE_SHAPES.items()}
    noise, n = _noise(3, [zeros] * 12), NOISE_N
    p = math.erf(1 / math.sqrt(2))
    for t, z in enumerate(noise):
        sigma = math.sqrt(NOISE_ETA / (1 + t) ** NOISE_GAMMA)
        for k in NOISE_SHAPES:
            x = z[k].ravel() / sigma
            # Standard normal: 5-sigma bounds for the mean, variance and P(|x| < 1) of n draws.
            assert abs(x.mean()) < 5 / math.sqrt(n), (t, k)
            assert abs(x.var() - 1) < 5 * math.sqrt(2 / n), (t, k)
            assert abs(np.mean(np.abs(x) < 1) - p) < 5 * math.sqrt(p * (1 - p) / n), (t, k)
        # Independent across leaves and steps.
        assert abs(np.corrcoef(z["a"], z["b"].ravel())[0, 1]) < 5 / math.sqrt(n)
        if t:
            assert abs(np.corrcoef(z["a"], noise[t - 1]["a"])[0, 1]) < 5 / math.sqrt(n)


def test_noisy_sgd_noise_depends_on_seed_and_step_only():
    rng = np.random.default_rng(25)
    draw = lambda: {k: jnp.asarray(rng.standard_normal(s), jnp.float32) for k, s in NOISE_SHAPES.items()}  # fmt: skip
    g1, g2 = [draw() for _ in range(3)], [draw() for _ in range(3)]
    z1, z2, z3 = _noise(7, g1), _noise(7, g2), _noise(8, g1)
    for a, b, c in zip(z1, z2, z3, strict=True):
        for k in NOISE_SHAPES:
            np.testing.assert_allclose(a[k], b[k], atol=1e-6)  # float32 round-off of g + z
            assert np.max(np.abs(a[k] - c[k])) > 0.1


# ---- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (lambda: gradtx.adagrad(0.1, eps=-1.0), ValueError, "scale_by_rss: `eps` must be >= 0, got -1.0."),
        (lambda: gradtx.adagrad(0.1, -0.1), ValueError, "scale_by_rss: `initial_accumulator_value` must be >= 0, got -0.1."),
        (lambda: gradtx.rmsprop(0.1, decay=1.0), ValueError, "scale_by_rms: `decay` must be in [0, 1), got 1.0."),
        (lambda: gradtx.rmsprop(0.1, initial_scale=-1.0, centered=True), ValueError, "scale_by_stddev: `initial_scale` must be >= 0, got -1.0."),
        (lambda: gradtx.rmsprop(0.1, nesterov=True), ValueError, "rmsprop: `nesterov=True` needs a `momentum`, e.g. momentum=0.9."),
        (lambda: gradtx.rmsprop(0.1, momentum=1.0), ValueError, "rmsprop: `momentum` must be in [0, 1), got 1.0."),
        (lambda: gradtx.adadelta(eps=0.0), ValueError, "scale_by_adadelta: `eps` must be > 0, got 0.0."),
        (lambda: gradtx.adadelta(rho=-0.5), ValueError, "scale_by_adadelta: `rho` must be in [0, 1), got -0.5."),
        (lambda: gradtx.adamax(0.1, b2=1.0), ValueError, "scale_by_adamax: `b2` must be in [0, 1), got 1.0."),
        (lambda: gradtx.amsgrad(0.1, bias_correction_nu=False, correct_after_max=True), ValueError, "scale_by_amsgrad: `correct_after_max=True` corrects the second moment after the maximum, but `bias_correction_nu=False` turns that correction off. Set one of them."),
        (lambda: gradtx.amsgrad(0.1, mu_dtype=jnp.int8), TypeError, "scale_by_amsgrad: `mu_dtype` must be a floating dtype, got int8."),
        (lambda: gradtx.nadam(0.1, b1=1.0), ValueError, "scale_by_adam: `b1` must be in [0, 1), got 1.0."),
        (lambda: gradtx.radam(0.1, threshold=3.0), ValueError, "scale_by_radam: `threshold` must be >= 4, got 3.0."),
        (lambda: gradtx.radam(0.1, eps_root=-1.0), ValueError, "scale_by_radam: `eps_root` must be >= 0, got -1.0."),
        (lambda: gradtx.rprop(lambda t: 0.1), TypeError, "scale_by_rprop: `learning_rate` is the initial step size of every coordinate and must be a number, not a schedule; Rprop adapts the step sizes itself."),
        (lambda: gradtx.rprop(0.0), ValueError, "scale_by_rprop: `learning_rate` must be > 0, got 0.0."),
        (lambda: gradtx.rprop(0.1, eta_minus=1.0), ValueError, "scale_by_rprop: `eta_minus` must be in (0, 1), got 1.0."),
        (lambda: gradtx.rprop(0.1, eta_plus=1.0), ValueError, "scale_by_rprop: `eta_plus` must be > 1, got 1.0."),
        (lambda: gradtx.rprop(0.1, min_step_size=0.1, max_step_size=0.01), ValueError, "scale_by_rprop: `max_step_size` must be >= `min_step_size`, got 0.01 < 0.1."),
        (lambda: gradtx.signum(0.1, beta=1.0), ValueError, "signum: `beta` must be in [0, 1), got 1.0."),
        (lambda: gradtx.noisy_sgd(0.1, eta=-1.0), ValueError, "add_noise: `eta` must be >= 0, got -1.0."),
        (lambda: gradtx.noisy_sgd(0.1, seed=1.5), TypeError, "add_noise: `seed` must be an integer, got 1.5."),
    ],
)  # fmt: skip
def test_bad_hyperparameters(factory, error, message):
    with pytest.raises(error) as info:
        factory()
    assert str(info.value) == message


def test_rprop_rejects_complex_params():
    with pytest.raises(TypeError) as info:
        gradtx.rprop(0.1).init({"z": jnp.zeros(2, jnp.complex64)})
    assert str(info.value) == (
        "scale_by_rprop: params['z'] is complex; Rprop compares signs and needs real leaves "
        "(split complex parameters into real and imaginary parts)."
    )


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (gradtx.scale_by_rss, "sum_of_squares"),
        (gradtx.scale_by_rms, "nu"),
        (gradtx.scale_by_stddev, "mu"),
        (gradtx.scale_by_adadelta, "e_g"),
        (gradtx.scale_by_adamax, "mu"),
        (gradtx.scale_by_amsgrad, "mu"),
        (gradtx.scale_by_radam, "mu"),
        (lambda: gradtx.scale_by_rprop(0.1), "step_sizes"),
    ],
)
def test_state_for_other_params_names_the_leaf(factory, field):
    tx = factory()
    state = tx.init({"dense": {"w": jnp.zeros((2, 3))}})
    name = getattr(factory, "__name__", "scale_by_rprop")
    name = "scale_by_rprop" if name == "<lambda>" else name
    with pytest.raises(ValueError) as info:
        tx.update({"dense": {"w": jnp.zeros((3, 2))}}, state)
    assert str(info.value) == (
        f"{name}: updates['dense']['w'] has shape (3, 2), but state.{field}['dense']['w'] has "
        "shape (2, 3). The optimizer state was built for other parameters: call `init` with the "
        "parameters you are updating."
    )
