"""Sign-based and noisy first-order methods: signSGD, Signum, Rprop, noisy SGD."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._averaging import ema
from ._base import EmptyState, GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._processing import add_noise
from ._scaling import scale, scale_by_learning_rate


def scale_by_sign() -> GradientTransformation:
    """Replaces every update by its sign.

    Update rule::

        u_t = sign(g_t)          (+1, -1, or 0 where g_t = 0)

    References:
        Bernstein, Wang, Azizzadenesheli and Anandkumar, "signSGD: Compressed Optimisation for
        Non-Convex Problems", ICML 2018. arXiv:1802.04434
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(jnp.sign, updates), state

    return GradientTransformation(init_fn, update_fn)


def sign_sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """signSGD: `chain(scale_by_sign(), scale_by_learning_rate(learning_rate))`.

    Update rule::

        theta_t = theta_{t-1} - lr(t) * sign(g_t)

    Every coordinate moves by exactly `lr(t)` (or not at all where `g_t = 0`), so the
    learning rate sets the step length directly; decay it to converge (`sign_sgd` with a
    constant rate ends in a cycle of width ~`lr` around a minimum). PyTorch has no signSGD.

    References:
        Bernstein, Wang, Azizzadenesheli and Anandkumar, "signSGD: Compressed Optimisation for
        Non-Convex Problems", ICML 2018, Algorithm 1. arXiv:1802.04434
    """
    return chain(scale_by_sign(), scale_by_learning_rate(learning_rate))


def signum(
    learning_rate: ScalarOrSchedule, beta: float = 0.9, *, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Signum: signSGD on a momentum (moving average) of the gradients.

    Update rule (`m_0 = 0`)::

        m_t     = beta * m_{t-1} + (1 - beta) * g_t
        theta_t = theta_{t-1} - lr(t) * sign(m_t)

    This is `chain(ema(beta, debias=False), scale_by_sign(), scale_by_learning_rate(lr))`,
    as in Optax; debiasing would not change the sign. `beta = 0` is `sign_sgd`. PyTorch has
    no Signum.

    Args:
        learning_rate: a constant or a schedule of the step count.
        beta: decay of the momentum, in [0, 1).
        accumulator_dtype: dtype of `m`; by default each leaf's own dtype.

    References:
        Bernstein, Wang, Azizzadenesheli and Anandkumar, "signSGD: Compressed Optimisation for
        Non-Convex Problems", ICML 2018, Algorithm 3. arXiv:1802.04434
    """
    _checks.in_unit_interval("signum", "beta", beta)
    return chain(
        ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


class ScaleByRpropState(NamedTuple):
    """State of `scale_by_rprop`: per-coordinate step sizes and the previous gradients."""

    step_sizes: Updates
    prev_updates: Updates


def _check_rprop(fn, learning_rate, eta_minus, eta_plus, min_step_size, max_step_size):
    if callable(learning_rate):
        raise TypeError(
            f"{fn}: `learning_rate` is the initial step size of every coordinate and must be a "
            f"number, not a schedule; Rprop adapts the step sizes itself."
        )
    _checks.positive(fn, "learning_rate", learning_rate)
    lo = _checks.finite(fn, "eta_minus", eta_minus)
    if lo is not None and not 0 < lo < 1:
        raise ValueError(f"{fn}: `eta_minus` must be in (0, 1), got {eta_minus!r}.")
    hi = _checks.finite(fn, "eta_plus", eta_plus)
    if hi is not None and not hi > 1:
        raise ValueError(f"{fn}: `eta_plus` must be > 1, got {eta_plus!r}.")
    _checks.non_negative(fn, "min_step_size", min_step_size)
    smax = _checks.finite(fn, "max_step_size", max_step_size)
    smin = _checks.finite(fn, "min_step_size", min_step_size)
    if smax is not None and smin is not None and smax < smin:
        raise ValueError(
            f"{fn}: `max_step_size` must be >= `min_step_size`, got {max_step_size!r} < "
            f"{min_step_size!r}."
        )


def scale_by_rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> GradientTransformation:
    """Rprop's step: the gradient's sign times a per-coordinate step size adapted by sign changes.

    Update rule (`s_0 = learning_rate`, `p_0 = 0`; `clip` to [min_step_size, max_step_size])::

        c_t = sign(g_t * p_{t-1})
        s_t = clip(s_{t-1} * eta_plus)          if c_t > 0   (same sign: grow)
              clip(s_{t-1} * eta_minus)         if c_t < 0   (sign flip: shrink)
              clip(s_{t-1})                     if c_t = 0
        p_t = 0 if c_t < 0 else g_t
        u_t = sign(p_t) * s_t

    After a sign flip the coordinate does not move and its gradient is forgotten (`p_t = 0`),
    so the next step neither grows nor shrinks it: Riedmiller and Braun's Rprop without
    weight backtracking (often called Rprop-).

    This is `torch.optim.Rprop`'s rule (`etas=(eta_minus, eta_plus)`, `step_sizes=(min, max)`).
    PyTorch finds the flipped coordinates by comparing the factor with `etaminus`, which also
    catches `c_t = 0` when `etaminus == 1` and `c_t > 0` when `etaplus == etaminus`; here the
    sign decides, and `eta_minus < 1 < eta_plus` is required. It also differs from Optax
    0.2.8's `scale_by_rprop`, which returns the previous step's update (0 at the first step)
    and clips the step size only when the sign changes.

    Args:
        learning_rate: the initial step size, > 0 (a number: Rprop adapts it per coordinate).
        eta_minus: the factor applied after a sign flip, in (0, 1).
        eta_plus: the factor applied when the sign is kept, > 1.
        min_step_size: the smallest step size, >= 0.
        max_step_size: the largest step size, >= min_step_size.

    References:
        Riedmiller and Braun, "A Direct Adaptive Method for Faster Backpropagation Learning:
        The RPROP Algorithm", IEEE International Conference on Neural Networks, 1993.
    """
    fn = "scale_by_rprop"
    _check_rprop(fn, learning_rate, eta_minus, eta_plus, min_step_size, max_step_size)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            if jnp.iscomplexobj(leaf):
                raise TypeError(
                    f"{fn}: params{jax.tree_util.keystr(path)} is complex; Rprop compares signs "
                    f"and needs real leaves (split complex parameters into real and imaginary "
                    f"parts)."
                )
        return ScaleByRpropState(
            step_sizes=jax.tree.map(
                lambda p: jnp.full(p.shape, _numerics.as_dtype(learning_rate, p.dtype), p.dtype),
                params,
            ),
            prev_updates=jax.tree.map(jnp.zeros_like, params),
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(
            fn, "state.step_sizes", state.step_sizes, "updates", updates, hint=_checks.STATE_HINT
        )

        def leaf(g, s, p):
            cd = _numerics.compute_dtype(g.dtype)
            gw, sw = g.astype(cd), s.astype(cd)
            c = jnp.sign(gw * p.astype(cd))
            factor = jnp.where(
                c > 0,
                _numerics.as_dtype(eta_plus, cd),
                jnp.where(c < 0, _numerics.as_dtype(eta_minus, cd), jnp.ones_like(sw)),
            )
            s_new = jnp.clip(
                sw * factor,
                _numerics.as_dtype(min_step_size, cd),
                _numerics.as_dtype(max_step_size, cd),
            )
            p_new = jnp.where(c < 0, jnp.zeros_like(gw), gw)
            u = jnp.sign(p_new) * s_new
            return u.astype(g.dtype), s_new.astype(s.dtype), p_new.astype(p.dtype)

        u, steps, prev = _tree.map_unzip(leaf, 3, updates, state.step_sizes, state.prev_updates)
        return u, ScaleByRpropState(step_sizes=steps, prev_updates=prev)

    return GradientTransformation(init_fn, update_fn)


def rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> GradientTransformation:
    """Rprop: `chain(scale_by_rprop(...), scale(-1))`.

    Update rule (see `scale_by_rprop` for `u_t`)::

        theta_t = theta_{t-1} - u_t

    Equals `torch.optim.Rprop(lr=learning_rate, etas=(eta_minus, eta_plus),
    step_sizes=(min_step_size, max_step_size))` (see `scale_by_rprop` on the one difference);
    `maximize=True` is rprop of `-g`. Rprop is meant for full-batch gradients: it reacts to
    sign flips, which minibatch noise produces at random.

    References:
        Riedmiller and Braun, "A Direct Adaptive Method for Faster Backpropagation Learning:
        The RPROP Algorithm", IEEE International Conference on Neural Networks, 1993.
    """
    return chain(
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),
        scale(-1.0),
    )


def noisy_sgd(
    learning_rate: ScalarOrSchedule, eta: float = 0.01, gamma: float = 0.55, seed: int = 0
) -> GradientTransformation:
    """SGD on gradients with annealed Gaussian noise added.

    Update rule (t = 0, 1, ...; `z_t` standard normal, fresh for every element and step)::

        sigma_t^2 = eta / (1 + t)^gamma
        theta_t   = theta_{t-1} - lr(t) * (g_t + sigma_t * z_t)

    This is `chain(add_noise(eta, gamma, seed), scale_by_learning_rate(lr))`, as in Optax
    (which calls the seed `key`).
    The noise is a function of `seed` and the step alone, the same under `jit` and eagerly
    and independent of the gradients. PyTorch has no noisy SGD.

    Args:
        learning_rate: a constant or a schedule of the step count.
        eta: the initial noise variance, >= 0 (the paper tries 0.01, 0.3 and 1.0).
        gamma: the annealing exponent, >= 0 (0.55 in the paper).
        seed: an integer seed for the noise.

    References:
        Neelakantan, Vilnis, Le, Sutskever, Kaiser, Kurach and Martens, "Adding Gradient Noise
        Improves Learning for Very Deep Networks", ICLR 2016 workshop. arXiv:1511.06807
    """
    return chain(add_noise(eta, gamma, seed), scale_by_learning_rate(learning_rate))
