"""L-BFGS and the strong-Wolfe line search: the two-loop recursion against `reference.py`,
fixed-step trajectories against `torch.optim.LBFGS` (golden data from
`tests/golden/make_golden_lbfgs.py`), convergence, and jit / scan / bfloat16 behaviour (the line
search needs extra arguments, so these are here rather than in `test_contract.py`)."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "torch_golden_lbfgs.npz"


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def quadratic_problem(dim=20, condition=100.0, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    a = (q * np.geomspace(1.0, condition, dim)) @ q.T
    b = rng.standard_normal(dim)
    return a, b, np.linalg.solve(a, b)


def minimise(opt, loss, x0, steps, linesearch=True):
    """Runs `steps` jitted iterations; returns the iterates (float64) and the states."""
    params = x0
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(loss)(params)
        extra = {"value": value, "grad": grad, "value_fn": loss} if linesearch else {}
        updates, state = opt.update(grad, state, params, **extra)
        return gradtx.apply_updates(params, updates), state

    iterates, states = [], []
    for _ in range(steps):
        params, state = step(params, state)
        iterates.append(jax.tree.map(lambda x: np.asarray(x, np.float64), params))
        states.append(state)
    return iterates, states


# ---- the two-loop recursion ---------------------------------------------------------------------


def two_loop_inputs(dtype):
    """14 (params, gradient) pairs of a two-leaf tree: gradients of a convex quadratic, except
    at steps 5 and 9, whose random gradients make pairs with negative curvature (skipped)."""
    a, b, _ = quadratic_problem(dim=10, condition=20.0, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(10)
    xs, gs = [], []
    for t in range(14):
        g = a @ x - b if t not in (5, 9) else -30 * rng.standard_normal(10)
        xs.append(x.copy())
        gs.append(g)
        x = x - 0.3 * rng.standard_normal(10)
    tree = lambda v: {"a": jnp.asarray(v[:6].reshape(3, 2), dtype), "b": jnp.asarray(v[6:], dtype)}
    # Round the inputs to `dtype` before handing them to the float64 reference.
    xs = [np.asarray(x, dtype).astype(np.float64) for x in xs]
    gs = [np.asarray(g, dtype).astype(np.float64) for g in gs]
    return xs, gs, tree


@pytest.mark.parametrize(("dtype", "scale_init_precond"), [("float32", True), ("float64", False)])
def test_two_loop_recursion_matches_reference(dtype, scale_init_precond):
    with jax.enable_x64(dtype == "float64"):
        xs, gs, tree = two_loop_inputs(dtype)
        want = reference.lbfgs_directions(
            xs, gs, memory_size=4, scale_init_precond=scale_init_precond, eps=np.finfo(dtype).eps
        )
        tx = gradtx.scale_by_lbfgs(memory_size=4, scale_init_precond=scale_init_precond)
        update = jax.jit(tx.update)
        state = tx.init(tree(xs[0]))
        for t, (x, g) in enumerate(zip(xs, gs, strict=True)):
            u, state = update(tree(g), state, tree(x))
            got = np.concatenate([np.asarray(u["a"], np.float64).ravel(), np.asarray(u["b"])])
            tol = 1e-12 if dtype == "float64" else 2e-5
            scale = np.linalg.norm(want[t])
            np.testing.assert_allclose(got, want[t], rtol=tol, atol=tol * scale, err_msg=f"{t}")
        # Of the 13 pairs formed, those touching a random gradient were skipped.
        curvatures = [
            (x1 - x0) @ (g1 - g0) for x0, x1, g0, g1 in zip(xs, xs[1:], gs, gs[1:], strict=False)
        ]
        assert sum(c <= 0 for c in curvatures) == 3
        assert int(state.num_pairs) == 10
        assert int(state.count) == 14


def test_two_loop_is_the_inverse_hessian_after_conjugate_steps():
    # On a quadratic, BFGS updates along n A-conjugate steps keep every secant equation
    # H y_i = s_i (the hereditary property), so H = A^{-1} after n = 3 pairs.
    a = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    conjugate = np.linalg.eigh(a)[1].T  # eigenvectors: orthogonal and A-conjugate
    tx = gradtx.scale_by_lbfgs(memory_size=5)
    with jax.enable_x64(True):
        xs = [np.zeros(3)]
        for v in conjugate:
            xs.append(xs[-1] + v)
        update = jax.jit(tx.update)
        state = tx.init(jnp.zeros(3))
        for x in xs:
            _, state = update(jnp.asarray(a @ x), state, jnp.asarray(x))
        probe = np.array([0.3, -1.2, 0.7])
        u, _ = update(jnp.asarray(probe), state, jnp.asarray(xs[-1]))
        np.testing.assert_allclose(np.asarray(u), np.linalg.solve(a, probe), rtol=1e-12)


# ---- against torch.optim.LBFGS ------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("case", ["fixed_a", "fixed_b"])
def test_fixed_step_matches_torch(golden, case):
    # float64 on both sides: the trajectories agree to 2e-10 (measured), while a memory one
    # pair shorter or longer moves them by more than 3e-2.
    traj = golden[f"{case}/traj"]
    lr, history = float(golden[f"{case}/hp/lr"]), int(golden[f"{case}/hp/history_size"])
    assert len(traj) >= 19
    with jax.enable_x64(True):
        opt = gradtx.lbfgs(lr, memory_size=history, linesearch=None)
        x0 = jnp.asarray(golden[f"{case}/x0"])
        got, _ = minimise(opt, rosenbrock, x0, len(traj), linesearch=False)
    np.testing.assert_allclose(np.stack(got), traj, rtol=0, atol=1e-9)


def test_strong_wolfe_converges_as_fast_as_torch(golden):
    # The line searches differ (see `lbfgs`), so the comparison is by outcome: gradtx reaches
    # the minimiser (1, 1) to 1e-10 in 37 iterations and 45 evaluations (measured), PyTorch in
    # 40 iterations and 49 evaluations.
    with jax.enable_x64(True):
        got, states = minimise(gradtx.lbfgs(), rosenbrock, jnp.asarray(golden["wolfe/x0"]), 45)
    err = np.array([np.max(np.abs(x - 1)) for x in got])
    first = int(np.argmax(err < 1e-10)) + 1
    evaluations = sum(int(s[2].num_linesearch_steps) for s in states[:first])
    assert err[first - 1] < 1e-10
    assert first <= int(golden["wolfe/n_iter"])
    assert evaluations <= int(golden["wolfe/func_evals"])
    np.testing.assert_allclose(golden["wolfe/x"], [1.0, 1.0], atol=1e-10)
    assert all(bool(s[2].success) for s in states[:first])


# ---- convergence (float32 runs: tests/test_convergence.py) ---------------------------------------


def test_quadratic_matches_scipy(golden):
    # scipy's L-BFGS-B (see make_golden_lbfgs.py): the iterates agree to 1e-10 over 40 steps
    # (measured 6e-13); no initial scaling moves them by 8e-2, a memory of 9 pairs by 5e-3.
    a, b, traj = (golden[f"scipy_quadratic/{k}"] for k in ("a", "b", "traj"))
    with jax.enable_x64(True):
        loss = lambda x: 0.5 * x @ (jnp.asarray(a) @ x) - jnp.asarray(b) @ x
        got, states = minimise(gradtx.lbfgs(), loss, jnp.zeros(20), len(traj))
    np.testing.assert_allclose(np.stack(got), traj, rtol=0, atol=1e-10)
    x_star = np.linalg.solve(a, b)
    rel = np.linalg.norm(np.stack(got) - x_star, axis=1) / np.linalg.norm(x_star)
    # Not finite termination (the search accepts unit steps rather than exact minimisers):
    # 1e-2 after 20 steps, 1e-4 after 37 (steepest descent would need ~460 for 1e-4).
    assert rel[19] < 2e-2 and rel[36] < 1.1e-4
    assert all(bool(s[2].success) for s in states)


# ---- the line search ----------------------------------------------------------------------------


def run_search(ls, loss, x, direction):
    x, direction = jnp.asarray(x), jnp.asarray(direction)
    value, grad = jax.value_and_grad(loss)(x)
    return ls.update(direction, ls.init(x), x, value=value, grad=grad, value_fn=loss)


def test_chosen_step_satisfies_the_strong_wolfe_conditions():
    loss = lambda x: jnp.sum(x**4) + jnp.sum(jnp.cos(3 * x))
    x = jnp.array([1.3, -0.4, 0.9])
    d = -jax.grad(loss)(x)
    u, state = run_search(gradtx.scale_by_zoom_linesearch(), loss, x, d)
    eta = float(state.learning_rate)
    x64, d64 = np.asarray(x, np.float64), np.asarray(d, np.float64)
    f = lambda e: np.sum((x64 + e * d64) ** 4) + np.sum(np.cos(3 * (x64 + e * d64)))
    df = lambda e: (4 * (x64 + e * d64) ** 3 - 3 * np.sin(3 * (x64 + e * d64))) @ d64
    assert bool(state.success) and eta != 1.0
    assert f(eta) <= f(0) + 1e-4 * eta * df(0)
    assert abs(df(eta)) <= 0.9 * abs(df(0))
    np.testing.assert_allclose(np.asarray(u), eta * d64, rtol=1e-6)
    np.testing.assert_allclose(float(state.value), f(eta), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state.grad) @ d64, df(eta), rtol=1e-4, atol=1e-4)


def test_max_learning_rate_caps_the_step():
    loss = lambda x: jnp.sum((x - 10.0) ** 2)
    x = jnp.zeros(2)
    d = jnp.array([0.01, 0.01])  # a long way to go: the bracketing phase keeps growing the step
    # A traced cap (as set by `inject_hyperparams`): one compilation for both runs.
    search = jax.jit(
        lambda cap: run_search(gradtx.scale_by_zoom_linesearch(max_learning_rate=cap), loss, x, d)
    )
    _, state = search(50.0)
    assert float(state.learning_rate) == 50.0 and not bool(state.success)
    _, state = search(1e6)
    # Uncapped, the step doubles from 1 until the slope f'(eta) = -0.04 (10 - 0.01 eta) is
    # within 0.9 of f'(0) = -0.4 in size: not at 64 (-0.374), at 128 (-0.349), 8 trials.
    assert bool(state.success) and float(state.learning_rate) == 128.0
    assert int(state.num_linesearch_steps) == 8


def test_ascent_direction_is_replaced_by_the_negative_gradient():
    loss = lambda x: jnp.sum(x**2)
    x = jnp.array([1.0, -2.0])
    u, state = run_search(gradtx.scale_by_zoom_linesearch(), loss, x, jax.grad(loss)(x))
    # Along -g = -2x the exact minimiser is eta = 1/2, which the cubic fit finds.
    assert bool(state.success)
    np.testing.assert_allclose(np.asarray(u), -np.asarray(x), rtol=1e-6)


def test_failed_search_takes_no_step():
    loss = lambda x: jnp.sum(jnp.abs(x) ** 1.5) + jnp.where(jnp.sum(x**2) > 4, 1e3, 0.0)
    x = jnp.array([1.5, 1.5])
    # One trial at eta = 1 lands where the loss has risen: not even the Armijo condition holds.
    u, state = run_search(
        gradtx.scale_by_zoom_linesearch(max_linesearch_steps=1), loss, x, jnp.array([-4.0, -4.0])
    )
    assert not bool(state.success) and int(state.num_linesearch_steps) == 1
    np.testing.assert_array_equal(np.asarray(u), [0.0, 0.0])
    np.testing.assert_allclose(float(state.value), float(loss(x)))


# ---- jit, scan, bfloat16 ------------------------------------------------------------------------


def signature(tree):
    return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def tree_loss(p):
    return jnp.sum(jnp.cosh(p["w"] - 1.0) - 1) + jnp.sum((p["b"] - 0.5) ** 2) + (p["s"] - 2) ** 4


def tree_params(dtype=jnp.float32):
    return {
        "w": jnp.asarray([[-1.2, 1.0], [0.3, 0.4]], dtype),
        "b": jnp.zeros(3, dtype),
        "s": jnp.asarray(0.0, dtype),
    }


def test_no_retrace():
    # (jit == eager: the eager paths of the line search are checked against NumPy above; an
    # eager L-BFGS step compiles each of its lax loops afresh and takes many seconds.)
    opt = gradtx.lbfgs(memory_size=3)
    traces = []

    def step(params, state):
        traces.append(1)
        value, grad = jax.value_and_grad(tree_loss)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=tree_loss)
        return gradtx.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    params = tree_params()
    state = opt.init(params)
    for _ in range(3):
        params, state = step(params, state)
    assert len(traces) == 1


def test_state_is_stable_under_scan():
    opt = gradtx.lbfgs(memory_size=3)
    params = tree_params()

    def body(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(tree_loss)(params)
        updates, new_state = opt.update(
            grad, state, params, value=value, grad=grad, value_fn=tree_loss
        )
        assert signature(new_state) == signature(state)
        return (gradtx.apply_updates(params, updates), new_state), value

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=8)
    assert np.all(np.diff(np.asarray(values)) <= 0)  # the line search only accepts decreases
    assert float(tree_loss(p)) < 1e-2 * float(values[0])


def test_bf16_params_stay_bf16():
    opt = gradtx.lbfgs(memory_size=3)
    params = tree_params(jnp.bfloat16)
    state = state0 = opt.init(params)

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(tree_loss)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=tree_loss)
        return gradtx.apply_updates(params, updates), state, updates

    for _ in range(4):
        params, state, updates = step(params, state)
        assert {x.dtype for x in jax.tree.leaves((params, updates))} == {jnp.dtype(jnp.bfloat16)}
    assert signature(state) == signature(state0)
    assert float(tree_loss(params)) < 0.05 * float(tree_loss(tree_params(jnp.bfloat16)))


# ---- errors -------------------------------------------------------------------------------------


def test_missing_extra_arguments_say_what_to_pass():
    opt = gradtx.chain(gradtx.scale(-1.0), gradtx.scale_by_zoom_linesearch())
    params = jnp.zeros(2)
    with pytest.raises(ValueError) as info:
        opt.update(params, opt.init(params), params, value=jnp.asarray(0.0))
    assert str(info.value) == (
        "scale_by_zoom_linesearch: `update` needs the keyword arguments `value`, `grad` and "
        "`value_fn` (missing: `grad`, `value_fn`). Call `update(updates, state, params, "
        "value=loss, grad=grad, value_fn=loss_fn)`, where `loss, grad = "
        "jax.value_and_grad(loss_fn)(params)` and `loss_fn` maps the params to a scalar."
    )


def test_complex_params_are_rejected():
    with pytest.raises(TypeError) as info:
        gradtx.lbfgs().init({"z": jnp.zeros(2, jnp.complex64)})
    assert str(info.value) == (
        "scale_by_lbfgs: params['z'] has dtype complex64; this transformation needs real "
        "parameters (optimize the real and imaginary parts as separate real leaves)."
    )


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: gradtx.scale_by_lbfgs(memory_size=0),
            "scale_by_lbfgs: `memory_size` must be an integer > 0, got 0.",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(slope_rtol=0.9, curv_rtol=0.5),
            "scale_by_zoom_linesearch: the Wolfe constants must satisfy 0 < `slope_rtol` < `curv_rtol` < 1, got slope_rtol=0.9 and curv_rtol=0.5.",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(increase_factor=1.0),
            "scale_by_zoom_linesearch: `increase_factor` must be > 1, got 1.0.",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch(max_learning_rate=0.0),
            "scale_by_zoom_linesearch: `max_learning_rate` must be > 0, got 0.0.",
        ),
        (
            lambda: gradtx.scale_by_zoom_linesearch().update(
                jnp.ones(2),
                gradtx.scale_by_zoom_linesearch().init(jnp.zeros(2)),
                jnp.zeros(2),
                value=jnp.zeros(2),
                grad=jnp.zeros(2),
                value_fn=jnp.sum,
            ),
            "scale_by_zoom_linesearch: `value` must be a scalar, got shape (2,).",
        ),
    ],
)
def test_errors(factory, message):
    with pytest.raises(ValueError) as info:
        factory()
    assert str(info.value) == message
