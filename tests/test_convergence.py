"""Convergence smoke tests: each optimizer brings a convex quadratic and Rosenbrock's function
below a stated loss within a stated number of steps (full-batch gradients, float32).

To add an optimizer, append rows to `CASES`:
`(id, factory taking the number of steps, problem, steps, loss threshold)`. The factory gets
the number of steps so that a schedule can span the run.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

# 0.5 * sum(a_i (x_i - c_i)^2): condition number 10; 34.75 at the start.
_A = jnp.array([1.0, 2.0, 5.0, 10.0])
_C = jnp.array([1.0, -1.0, 2.0, 0.5])


def quadratic(params):
    return 0.5 * jnp.sum(_A * (params["x"] - _C) ** 2)


def rosenbrock(params):
    """(1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1); 24.2 at the start (-1.2, 1)."""
    x, y = params["x"][0], params["x"][1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


# A linear regression with a (6, 4) weight matrix and a bias: 4.43 at the start (zeros).
_RNG = np.random.default_rng(0)
_X = jnp.asarray(_RNG.standard_normal((32, 6)), jnp.float32)
_Y = _X @ jnp.asarray(_RNG.standard_normal((6, 4)), jnp.float32) + jnp.asarray(
    _RNG.standard_normal((1, 4)), jnp.float32
)


def least_squares(params):
    return 0.5 * jnp.mean((_X @ params["w"] + params["b"][None, :] - _Y) ** 2)


PROBLEMS = {
    "quadratic": (quadratic, {"x": jnp.array([3.0, 2.0, -1.0, 1.0])}),
    "rosenbrock": (rosenbrock, {"x": jnp.array([-1.2, 1.0])}),
    "least_squares": (least_squares, {"w": jnp.zeros((6, 4)), "b": jnp.zeros(4)}),
}


def cosine(peak):
    return lambda steps: gradtx.cosine_decay_schedule(peak, steps)


CASES = [
    # ---- AdaBelief, Yogi, Adan, SM3, Adafactor, LAMB, LARS, NovoGrad, Fromage ----
    ("adabelief", lambda n: gradtx.adabelief(0.1), "quadratic", 1000, 1e-6),
    ("adabelief", lambda n: gradtx.adabelief(0.1), "rosenbrock", 2000, 1e-4),
    ("yogi", lambda n: gradtx.yogi(0.1), "quadratic", 1000, 1e-6),
    ("yogi", lambda n: gradtx.yogi(0.1), "rosenbrock", 2000, 1e-4),
    ("adan", lambda n: gradtx.adan(cosine(0.1)(n)), "quadratic", 1000, 1e-6),
    ("adan", lambda n: gradtx.adan(cosine(0.1)(n)), "rosenbrock", 2000, 1e-4),
    ("sm3", lambda n: gradtx.sm3(2.0), "quadratic", 1000, 1e-6),
    ("sm3", lambda n: gradtx.sm3(2.0), "rosenbrock", 2000, 1e-4),
    (
        "adafactor",
        lambda n: gradtx.adafactor(cosine(0.1)(n), momentum=0.9),
        "quadratic",
        1000,
        1e-6,
    ),
    (
        "adafactor",
        lambda n: gradtx.adafactor(cosine(0.1)(n), momentum=0.9),
        "rosenbrock",
        2000,
        1e-4,
    ),
    ("lamb", lambda n: gradtx.lamb(cosine(0.05)(n)), "quadratic", 1000, 1e-6),
    ("lamb", lambda n: gradtx.lamb(cosine(0.05)(n)), "rosenbrock", 2000, 1e-4),
    ("lars", lambda n: gradtx.lars(cosine(0.1)(n), trust_coefficient=0.1), "quadratic", 1000, 1e-6),
    (
        "lars",
        lambda n: gradtx.lars(cosine(0.1)(n), trust_coefficient=0.1),
        "rosenbrock",
        2000,
        1e-4,
    ),
    ("novograd", lambda n: gradtx.novograd(cosine(0.05)(n)), "quadratic", 1000, 1e-6),
    ("novograd", lambda n: gradtx.novograd(cosine(0.05)(n)), "rosenbrock", 2000, 1e-4),
    ("fromage", lambda n: gradtx.fromage(cosine(0.05)(n)), "quadratic", 1000, 1e-6),
    ("fromage", lambda n: gradtx.fromage(cosine(0.05)(n)), "rosenbrock", 2000, 1e-4),
    # ---- Adagrad, RMSProp, Adadelta, Adamax, AMSGrad, NAdam(W), RAdam, Rprop, sign methods, noisy SGD.
    # Rosenbrock's gradient is 232 at the start: methods whose first steps are not normalised
    # (RAdam's first 5 steps are momentum SGD; noisy SGD) diverge unless the step is < ~1e-3,
    # and methods that remember that gradient (Adagrad's sum, AMSGrad's maximum) or take
    # coordinate-wise unit steps (signSGD) crawl along the valley: those get more steps.
    ("adagrad", lambda n: gradtx.adagrad(1.0), "quadratic", 1000, 1e-6),
    ("adagrad", lambda n: gradtx.adagrad(0.5), "rosenbrock", 10000, 1e-4),
    ("rmsprop", lambda n: gradtx.rmsprop(cosine(0.01)(n)), "quadratic", 1000, 1e-6),
    ("rmsprop", lambda n: gradtx.rmsprop(cosine(0.01)(n), momentum=0.9), "rosenbrock", 2000, 1e-4),
    (
        "rmsprop_centered_nesterov",
        lambda n: gradtx.rmsprop(cosine(0.01)(n), centered=True, momentum=0.9, nesterov=True),
        "quadratic",
        1000,
        1e-6,
    ),
    (
        "rmsprop_centered_nesterov",
        lambda n: gradtx.rmsprop(cosine(0.01)(n), centered=True, momentum=0.9, nesterov=True),
        "rosenbrock",
        2000,
        1e-4,
    ),
    ("adadelta", lambda n: gradtx.adadelta(1.0, eps=1e-3), "quadratic", 1000, 1e-6),
    ("adadelta", lambda n: gradtx.adadelta(cosine(1.0)(n), rho=0.95), "rosenbrock", 10000, 1e-4),
    ("adamax", lambda n: gradtx.adamax(cosine(0.1)(n)), "quadratic", 1000, 1e-6),
    ("adamax", lambda n: gradtx.adamax(cosine(0.05)(n), b2=0.99), "rosenbrock", 2000, 1e-4),
    ("amsgrad", lambda n: gradtx.amsgrad(cosine(0.1)(n)), "quadratic", 1000, 1e-6),
    ("amsgrad", lambda n: gradtx.amsgrad(cosine(1.0)(n)), "rosenbrock", 10000, 1e-4),
    (
        "amsgrad_torch_form",
        lambda n: gradtx.amsgrad(cosine(0.1)(n), correct_after_max=True),
        "quadratic",
        1000,
        1e-6,
    ),
    (
        "amsgrad_torch_form",
        lambda n: gradtx.amsgrad(cosine(0.1)(n), correct_after_max=True),
        "rosenbrock",
        5000,
        1e-4,
    ),
    ("nadam", lambda n: gradtx.nadam(cosine(0.1)(n)), "quadratic", 1000, 1e-6),
    ("nadam", lambda n: gradtx.nadam(cosine(0.1)(n)), "rosenbrock", 2000, 1e-4),
    ("nadamw", lambda n: gradtx.nadamw(cosine(0.1)(n)), "quadratic", 1000, 1e-6),
    ("nadamw", lambda n: gradtx.nadamw(cosine(0.1)(n)), "rosenbrock", 2000, 1e-4),
    ("radam", lambda n: gradtx.radam(cosine(0.1)(n)), "quadratic", 1000, 1e-6),
    (
        "radam",
        lambda n: gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.radam(cosine(0.02)(n))),
        "rosenbrock",
        2000,
        1e-4,
    ),
    ("rprop", lambda n: gradtx.rprop(0.1), "quadratic", 1000, 1e-6),
    ("rprop", lambda n: gradtx.rprop(0.01), "rosenbrock", 4000, 1e-4),
    ("sign_sgd", lambda n: gradtx.sign_sgd(cosine(0.1)(n)), "quadratic", 1000, 1e-6),
    ("sign_sgd", lambda n: gradtx.sign_sgd(cosine(0.001)(n)), "rosenbrock", 40000, 1e-4),
    ("signum", lambda n: gradtx.signum(cosine(0.1)(n)), "quadratic", 1000, 1e-6),
    ("signum", lambda n: gradtx.signum(cosine(0.01)(n)), "rosenbrock", 4000, 1e-4),
    ("noisy_sgd", lambda n: gradtx.noisy_sgd(cosine(0.15)(n), eta=1e-3), "quadratic", 1000, 1e-6),
    (
        "noisy_sgd",
        lambda n: gradtx.noisy_sgd(cosine(0.0015)(n), eta=1e-3),
        "rosenbrock",
        20000,
        1e-4,
    ),
    # ---- Prodigy, D-Adaptation, schedule-free (loss at the training params y), optimistic GD ----
    ("prodigy", lambda n: gradtx.prodigy(cosine(1.0)(n)), "quadratic", 1000, 1e-6),
    ("prodigy", lambda n: gradtx.prodigy(cosine(1.0)(n)), "rosenbrock", 2000, 1e-4),
    ("dadapt_adamw", lambda n: gradtx.dadapt_adamw(cosine(1.0)(n)), "quadratic", 1000, 1e-6),
    ("dadapt_adamw", lambda n: gradtx.dadapt_adamw(cosine(1.0)(n)), "rosenbrock", 2000, 1e-4),
    # Without momentum, D-Adapted SGD overshoots 2/L on this quadratic and diverges.
    ("dadapt_sgd", lambda n: gradtx.dadapt_sgd(momentum=0.9), "quadratic", 1000, 1e-6),
    ("dadapt_sgd", lambda n: gradtx.dadapt_sgd(momentum=0.9), "rosenbrock", 2000, 1e-4),
    ("schedule_free_sgd", lambda n: gradtx.schedule_free_sgd(0.1, 10), "quadratic", 1000, 1e-6),
    (
        "schedule_free_adamw",
        lambda n: gradtx.schedule_free_adamw(0.05, 10),
        "quadratic",
        2000,
        1e-6,
    ),
    (
        "schedule_free_adamw",
        lambda n: gradtx.schedule_free_adamw(0.005, 100, b1=0.95),
        "rosenbrock",
        20000,
        1e-4,
    ),
    ("optimistic_gd", lambda n: gradtx.optimistic_gradient_descent(0.05), "quadratic", 1000, 1e-6),
    # ---- Muon (on the 2-D weight; the bias goes to AdamW) ----
    ("muon", lambda n: gradtx.muon(cosine(0.1)(n)), "least_squares", 500, 1e-6),
    # ---- Shampoo (Kronecker-factored on the weight, diagonal on the bias) ----
    ("shampoo", lambda n: gradtx.shampoo(0.3), "least_squares", 200, 1e-6),
]


def minimise(tx, loss, params, steps):
    def body(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return (gradtx.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return loss(params)


@pytest.mark.parametrize(
    ("factory", "problem", "steps", "threshold"),
    [case[1:] for case in CASES],
    ids=[f"{case[0]}-{case[2]}" for case in CASES],
)
def test_converges(factory, problem, steps, threshold):
    loss, params = PROBLEMS[problem]
    assert float(loss(params)) > 1e4 * threshold  # the start is far from the threshold
    final = jax.jit(lambda p: minimise(factory(steps), loss, p, steps))(params)
    assert float(final) < threshold


# Optimizers whose `update` needs the loss: `(id, factory, problem, steps, loss threshold)`; the
# runner passes `value=`, `grad=` and `value_fn=` to `update`.
CASES_WITH_LOSS = [
    ("lbfgs", lambda n: gradtx.lbfgs(), "quadratic", 10, 1e-10),
    ("lbfgs", lambda n: gradtx.lbfgs(), "rosenbrock", 40, 1e-10),
    ("lbfgs", lambda n: gradtx.lbfgs(), "least_squares", 15, 1e-8),
]


def minimise_with_loss(tx, loss, params, steps):
    def body(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
        return (gradtx.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return loss(params)


@pytest.mark.parametrize(
    ("factory", "problem", "steps", "threshold"),
    [case[1:] for case in CASES_WITH_LOSS],
    ids=[f"{case[0]}-{case[2]}" for case in CASES_WITH_LOSS],
)
def test_converges_with_loss(factory, problem, steps, threshold):
    loss, params = PROBLEMS[problem]
    assert float(loss(params)) > 1e4 * threshold
    final = jax.jit(lambda p: minimise_with_loss(factory(steps), loss, p, steps))(params)
    assert float(final) < threshold
