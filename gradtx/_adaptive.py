"""Per-coordinate adaptive step sizes: Adagrad, Adadelta, Adamax (RMSProp is in `_rmsprop`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._decay import MaskOrFn, add_decayed_weights
from ._scaling import scale_by_learning_rate


def _full_like(tree: Any, value: chex.Numeric) -> Any:
    """Arrays shaped and typed like each leaf of `tree`, filled with `value`."""
    return jax.tree.map(
        lambda x: jnp.full(jnp.shape(x), _numerics.as_dtype(value, x.dtype), jnp.result_type(x)),
        tree,
    )


def _divide(num: chex.Array, den: chex.Array) -> chex.Array:
    """`num / den`, and `num` where `den == 0`: only for rules in which `den == 0` forces
    `num == 0` (a zero gradient with no squared-gradient history), giving a 0 update there."""
    return num / jnp.where(den > 0, den, jnp.ones_like(den))


class ScaleByRssState(NamedTuple):
    """State of `scale_by_rss`: the running sum of squared gradients, shaped like the params."""

    sum_of_squares: Updates


def scale_by_rss(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    """Divides each coordinate by the root of the sum of all its squared gradients (Adagrad).

    Update rule (`s_0 = initial_accumulator_value`; `eps` outside the square root, as in
    `torch.optim.Adagrad`)::

        s_t = s_{t-1} + g_t^2
        u_t = g_t / (sqrt(s_t) + eps)

    Where `sqrt(s_t) + eps == 0` (only possible with `eps = 0`, and then `g_t = 0`), `u_t = 0`.

    Optax's `scale_by_rss` puts `eps` inside the root instead: `u_t = g_t / sqrt(s_t + eps)`
    where `s_t > 0` (0 elsewhere). The two agree to first order in `eps` when `s_t >> eps`.

    Args:
        initial_accumulator_value: the starting value of `s`, >= 0.
        eps: added to the denominator outside the square root, >= 0.

    References:
        Duchi, Hazan and Singer, "Adaptive Subgradient Methods for Online Learning and
        Stochastic Optimization", Journal of Machine Learning Research 12, 2011.
    """
    fn = "scale_by_rss"
    _checks.non_negative(fn, "initial_accumulator_value", initial_accumulator_value)
    _checks.non_negative(fn, "eps", eps)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByRssState(sum_of_squares=_full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(
            fn,
            "state.sum_of_squares",
            state.sum_of_squares,
            "updates",
            updates,
            hint=_checks.STATE_HINT,
        )

        def leaf(g, s):
            cd = _numerics.compute_dtype(g.dtype)
            gw = g.astype(cd)
            s_new = s.astype(cd) + _numerics.abs_sq(gw)
            u = _divide(gw, jnp.sqrt(s_new) + _numerics.as_dtype(eps, cd))
            return u.astype(g.dtype), s_new.astype(s.dtype)

        u, s = _tree.map_unzip(leaf, 2, updates, state.sum_of_squares)
        return u, ScaleByRssState(sum_of_squares=s)

    return GradientTransformation(init_fn, update_fn)


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
) -> GradientTransformation:
    """Adagrad: `chain(scale_by_rss(...), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_rss` for `u_t`)::

        theta_t = theta_{t-1} - lr(t) * g_t / (sqrt(s_t) + eps)

    Relation to `torch.optim.Adagrad(lr, lr_decay, weight_decay, initial_accumulator_value,
    eps)`: the same rule with `eps` outside the root. The defaults differ: here Optax's
    (`initial_accumulator_value=0.1`, `eps=1e-7`), in PyTorch `0` and `1e-10`. PyTorch's
    `lr_decay` is the schedule
    `lambda t: lr / (1 + lr_decay * t.astype(jnp.float32))`; its `weight_decay` is an
    L2 term, `chain(add_decayed_weights(weight_decay), adagrad(...))`; `maximize=True` is
    adagrad applied to `-g`.

    References:
        Duchi, Hazan and Singer, "Adaptive Subgradient Methods for Online Learning and
        Stochastic Optimization", Journal of Machine Learning Research 12, 2011.
    """
    return chain(
        scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate)
    )


class ScaleByAdadeltaState(NamedTuple):
    """State of `scale_by_adadelta`: moving averages of squared gradients and squared updates."""

    e_g: Updates
    e_x: Updates


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> GradientTransformation:
    """Adadelta's step: the ratio of the RMS of past updates to the RMS of gradients.

    Update rule (`E[g^2]_0 = E[dx^2]_0 = 0`)::

        E[g^2]_t  = rho * E[g^2]_{t-1} + (1 - rho) * g_t^2
        u_t       = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t
        E[dx^2]_t = rho * E[dx^2]_{t-1} + (1 - rho) * u_t^2

    This is Algorithm 1 of the paper, and also `torch.optim.Adadelta` and Optax's rule.

    Args:
        rho: decay of both moving averages, in [0, 1).
        eps: added inside both roots, > 0 (with `eps = 0` the first step, and so every step,
            would be 0).

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012. arXiv:1212.5701
    """
    fn = "scale_by_adadelta"
    _checks.in_unit_interval(fn, "rho", rho)
    _checks.positive(fn, "eps", eps)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByAdadeltaState(e_g=_tree.zeros_like(params), e_x=_tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.e_g", state.e_g, "updates", updates, hint=_checks.STATE_HINT)

        def leaf(g, e_g, e_x):
            cd = _numerics.compute_dtype(g.dtype)
            r, eps_c = _numerics.as_dtype(rho, cd), _numerics.as_dtype(eps, cd)
            gw, e_x_old = g.astype(cd), e_x.astype(cd)
            e_g_new = r * e_g.astype(cd) + (1 - r) * _numerics.abs_sq(gw)
            u = jnp.sqrt(e_x_old + eps_c) / jnp.sqrt(e_g_new + eps_c) * gw
            e_x_new = r * e_x_old + (1 - r) * _numerics.abs_sq(u)
            return u.astype(g.dtype), e_g_new.astype(e_g.dtype), e_x_new.astype(e_x.dtype)

        u, e_g, e_x = _tree.map_unzip(leaf, 3, updates, state.e_g, state.e_x)
        return u, ScaleByAdadeltaState(e_g=e_g, e_x=e_x)

    return GradientTransformation(init_fn, update_fn)


def adadelta(
    learning_rate: ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    weight_decay_mask: MaskOrFn = None,
) -> GradientTransformation:
    """Adadelta, with an optional L2 term (`weight_decay`) added to the gradient.

    Update rule (see `scale_by_adadelta` for `u_t`; `g_t` includes `weight_decay * theta`)::

        theta_t = theta_{t-1} - lr(t) * u_t

    This is `chain(add_decayed_weights(weight_decay, weight_decay_mask), scale_by_adadelta(),
    scale_by_learning_rate(lr))` (the first member is left out when `weight_decay` is the
    number 0 and there is no mask, so that `update` then needs no `params`). It equals
    `torch.optim.Adadelta(lr, rho, eps, weight_decay)`, whose `weight_decay` is this same L2
    term; `maximize=True` is adadelta of `-g`. The paper has no learning rate (`lr = 1`, the
    default here and in PyTorch).

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012. arXiv:1212.5701
    """
    transforms = [scale_by_adadelta(rho, eps), scale_by_learning_rate(learning_rate)]
    no_decay = isinstance(weight_decay, int | float) and weight_decay == 0
    if not (no_decay and weight_decay_mask is None):
        transforms.insert(0, add_decayed_weights(weight_decay, weight_decay_mask))
    return chain(*transforms)


class ScaleByAdamaxState(NamedTuple):
    """State of `scale_by_adamax`: step count, first moment and exponentially weighted max."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    """Adamax: Adam with the infinity norm in place of the second moment.

    Update rule (t = 1, 2, ...)::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        u_t = max(b2 * u_{t-1}, |g_t| + eps)
        d_t = m_t / ((1 - b1^t) * u_t)

    `eps` is added to `|g_t|` inside the max, as in `torch.optim.Adamax` and Optax.

    Args:
        b1: decay of the first moment, in [0, 1).
        b2: decay of the weighted maximum, in [0, 1).
        eps: added to `|g_t|`, >= 0.

    References:
        Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Section 7.1.
        arXiv:1412.6980
    """
    fn = "scale_by_adamax"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_unit_interval(fn, "b2", b2)
    _checks.non_negative(fn, "eps", eps)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByAdamaxState(
            count=_numerics.zero_count(),
            mu=_tree.zeros_like(params),
            nu=_tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)
        count = _numerics.safe_increment(state.count)

        def leaf(g, m, v):
            cd = _numerics.compute_dtype(g.dtype)
            c2 = _numerics.as_dtype(b2, cd)
            gw = g.astype(cd)
            m_new = _numerics.ema(b1, m, gw, cd)
            v_new = jnp.maximum(c2 * v.astype(cd), jnp.abs(gw) + _numerics.as_dtype(eps, cd))
            u = m_new / (_tree.bias_correction(b1, count, cd) * v_new)
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        u, mu, nu = _tree.map_unzip(leaf, 3, updates, state.mu, state.nu)
        return u, ScaleByAdamaxState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def adamax(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> GradientTransformation:
    """Adamax: `chain(scale_by_adamax(...), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_adamax` for `d_t`)::

        theta_t = theta_{t-1} - lr(t) * d_t

    Equals `torch.optim.Adamax(lr, betas=(b1, b2), eps)`; PyTorch's `weight_decay` is an L2
    term, `chain(add_decayed_weights(weight_decay), adamax(...))`, and `maximize=True` is
    adamax of `-g`. PyTorch's default learning rate is 2e-3.

    References:
        Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Section 7.1.
        arXiv:1412.6980
    """
    return chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))
