"""Variants of Adam's second moment: AdaBelief, Yogi and Adan."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._decay import MaskOrFn, add_decayed_weights
from ._scaling import scale_by_learning_rate


class ScaleByBeliefState(NamedTuple):
    """State of `scale_by_belief`: step count, first moment and the belief (variance) term."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_belief(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Rescales updates by AdaBelief's estimate of the variance of the gradient around its mean.

    Update rule (Algorithm 2 of the paper; `eps_root` is added to the stored `s_t`, so it
    accumulates, as in the paper)::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        s_t = b2 * s_{t-1} + (1 - b2) * (g_t - m_t)^2 + eps_root
        m^  = m_t / (1 - b1^t)
        s^  = s_t / (1 - b2^t)
        u_t = m^ / (sqrt(s^) + eps)

    Where Adam divides by the root of the mean of `g^2`, AdaBelief divides by the root of the
    mean of `(g - m)^2`: steps are large when the gradient agrees with its running mean (the
    "belief") and small when it does not. With `nesterov=True` the first moment is looked
    ahead as in `scale_by_adam`.

    Args:
        b1: decay of the first moment, in [0, 1).
        b2: decay of the second (central) moment, in [0, 1).
        eps: added to the denominator outside the square root, >= 0.
        eps_root: added to `s_t` at every step, >= 0.
        nesterov: use the Nesterov (NAdam) form of the first moment.

    References:
        Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris and Duncan, "AdaBelief Optimizer:
        Adapting Stepsizes by the Belief in Observed Gradients", NeurIPS 2020.
        arXiv:2010.07468
    """
    fn = "scale_by_belief"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_unit_interval(fn, "b2", b2)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "eps_root", eps_root)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByBeliefState(
            count=_numerics.zero_count(), mu=_tree.zeros_like(params), nu=_tree.zeros_like(params)
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)
        count = _numerics.safe_increment(state.count)

        def leaf(g, m, s):
            cd = _numerics.compute_dtype(g.dtype)
            c1, c2 = _numerics.as_dtype(b1, cd), _numerics.as_dtype(b2, cd)
            gw = g.astype(cd)
            m_new = _numerics.ema(b1, m, gw, cd)
            s_new = (
                c2 * s.astype(cd)
                + _numerics.one_minus(b2, cd) * _numerics.abs_sq(gw - m_new)
                + _numerics.as_dtype(eps_root, cd)
            )
            bc1 = _tree.bias_correction(b1, count, cd)
            if nesterov:
                bc1_next = _tree.bias_correction(b1, _numerics.safe_increment(count), cd)
                m_hat = c1 * m_new / bc1_next + _numerics.one_minus(b1, cd) * gw / bc1
            else:
                m_hat = m_new / bc1
            s_hat = s_new / _tree.bias_correction(b2, count, cd)
            u = m_hat / (jnp.sqrt(s_hat) + _numerics.as_dtype(eps, cd))
            return u.astype(g.dtype), m_new.astype(m.dtype), s_new.astype(s.dtype)

        u, mu, nu = _tree.map_unzip(leaf, 3, updates, state.mu, state.nu)
        return u, ScaleByBeliefState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def adabelief(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdaBelief: `chain(scale_by_belief(...), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_belief` for the direction `d_t`)::

        theta_t = theta_{t-1} - lr(t) * d_t

    References:
        Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
        Gradients", NeurIPS 2020. arXiv:2010.07468
    """
    return chain(
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


class ScaleByYogiState(NamedTuple):
    """State of `scale_by_yogi`: step count, first moment and additive second moment."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_yogi(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    eps_root: float = 0.0,
    initial_accumulator_value: float = 1e-6,
) -> GradientTransformation:
    """Rescales updates by Yogi's additively updated second moment.

    Update rule (`m_0 = 0`, `v_0 = initial_accumulator_value`)::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = v_{t-1} - (1 - b2) * sign(v_{t-1} - g_t^2) * g_t^2
        u_t = (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t) + eps_root) + eps)

    Adam moves `v` a fraction `1 - b2` of the way to `g^2`, so one large gradient can
    multiply `v` many times over; Yogi moves it by at most `(1 - b2) * g^2` in the direction
    of `g^2`, which controls how fast the effective learning rate can change. `v` stays
    positive when `v_0 > 0`.

    The bias corrections are Adam's, as in Optax and the TensorFlow Addons implementation;
    the paper's Algorithm 2 has none. `m` starts at 0 as in the paper; Optax also starts `m`
    at `initial_accumulator_value`, which shifts its `m^` by
    `initial_accumulator_value * b1^t / (1 - b1^t)`.

    Args:
        b1: decay of the first moment, in [0, 1).
        b2: rate of the second-moment update, in [0, 1).
        eps: added to the denominator outside the square root, >= 0.
        eps_root: added inside the square root, >= 0.
        initial_accumulator_value: `v_0`, >= 0 (a small positive value keeps `v` positive).

    References:
        Zaheer, Reddi, Sachan, Kale and Kumar, "Adaptive Methods for Nonconvex Optimization",
        NeurIPS 2018.
    """
    fn = "scale_by_yogi"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_unit_interval(fn, "b2", b2)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "eps_root", eps_root)
    _checks.non_negative(fn, "initial_accumulator_value", initial_accumulator_value)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        nu = jax.tree.map(
            lambda p: jnp.full(
                p.shape, _numerics.as_dtype(initial_accumulator_value, p.dtype), p.dtype
            ),
            params,
        )
        return ScaleByYogiState(count=_numerics.zero_count(), mu=_tree.zeros_like(params), nu=nu)

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)
        count = _numerics.safe_increment(state.count)

        def leaf(g, m, v):
            cd = _numerics.compute_dtype(g.dtype)
            gw = g.astype(cd)
            g2 = _numerics.abs_sq(gw)
            vw = v.astype(cd)
            m_new = _numerics.ema(b1, m, gw, cd)
            v_new = vw - _numerics.one_minus(b2, cd) * jnp.sign(vw - g2) * g2
            m_hat = m_new / _tree.bias_correction(b1, count, cd)
            v_hat = v_new / _tree.bias_correction(b2, count, cd)
            u = m_hat / (
                jnp.sqrt(v_hat + _numerics.as_dtype(eps_root, cd)) + _numerics.as_dtype(eps, cd)
            )
            return u.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        u, mu, nu = _tree.map_unzip(leaf, 3, updates, state.mu, state.nu)
        return u, ScaleByYogiState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def yogi(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
) -> GradientTransformation:
    """Yogi: `chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_yogi` for the direction `d_t`)::

        theta_t = theta_{t-1} - lr(t) * d_t

    References:
        Zaheer, Reddi, Sachan, Kale and Kumar, "Adaptive Methods for Nonconvex Optimization",
        NeurIPS 2018.
    """
    return chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))


class ScaleByAdanState(NamedTuple):
    """State of `scale_by_adan`: step count, the three moments and the previous gradient."""

    count: chex.Array
    m: Updates
    v: Updates
    n: Updates
    g: Updates


def scale_by_adan(
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    """Rescales updates by Adan's Nesterov momentum estimate.

    Update rule (`d_t = g_t - g_{t-1}`, with `d_1 = 0`)::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * d_t
        n_t = b3 * n_{t-1} + (1 - b3) * (g_t + b2 * d_t)^2
        u_t = (m_t / (1 - b1^t) + b2 * v_t / (1 - b2^t))
              / (sqrt(n_t / (1 - b3^t) + eps_root) + eps)

    The decays are written as in Adam (the paper's `beta_i` are `1 - b_i` here; the defaults
    are the paper's 0.02, 0.08, 0.01), so the paper's `(1 - beta_2)` weight of the gradient
    difference is `b2`. As in the authors' released code, the moments start at zero and are
    bias-corrected (Algorithm 1 of the paper starts them at the first gradient instead), and
    `eps` is outside the square root.

    Optax 0.2.8 weights the gradient difference by `1 - b2` (0.08 with the defaults) instead
    of `b2` (0.92); this follows the paper and the authors' code.

    Args:
        b1: decay of the gradient average, in [0, 1).
        b2: decay of the gradient-difference average, in [0, 1).
        b3: decay of the squared look-ahead gradient average, in [0, 1).
        eps: added to the denominator outside the square root, >= 0.
        eps_root: added inside the square root, >= 0.

    References:
        Xie, Zhou, Li, Lin and Yan, "Adan: Adaptive Nesterov Momentum Algorithm for Faster
        Optimizing Deep Models", IEEE TPAMI 2024. arXiv:2208.06677
    """
    fn = "scale_by_adan"
    for name, value in (("b1", b1), ("b2", b2), ("b3", b3)):
        _checks.in_unit_interval(fn, name, value)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "eps_root", eps_root)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        zeros = lambda: _tree.zeros_like(params)
        return ScaleByAdanState(
            count=_numerics.zero_count(), m=zeros(), v=zeros(), n=zeros(), g=zeros()
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.m", state.m, "updates", updates, hint=_checks.STATE_HINT)
        first = state.count == 0
        count = _numerics.safe_increment(state.count)

        def leaf(g, m, v, n, g_prev):
            cd = _numerics.compute_dtype(g.dtype)
            c2 = _numerics.as_dtype(b2, cd)
            gw = g.astype(cd)
            diff = jnp.where(first, jnp.zeros_like(gw), gw - g_prev.astype(cd))
            m_new = _numerics.ema(b1, m, gw, cd)
            v_new = _numerics.ema(b2, v, diff, cd)
            n_new = _numerics.ema(b3, n, _numerics.abs_sq(gw + c2 * diff), cd)
            direction = m_new / _tree.bias_correction(b1, count, cd) + c2 * (
                v_new / _tree.bias_correction(b2, count, cd)
            )
            n_hat = n_new / _tree.bias_correction(b3, count, cd)
            u = direction / (
                jnp.sqrt(n_hat + _numerics.as_dtype(eps_root, cd)) + _numerics.as_dtype(eps, cd)
            )
            return (
                u.astype(g.dtype),
                m_new.astype(m.dtype),
                v_new.astype(v.dtype),
                n_new.astype(n.dtype),
                g.astype(g_prev.dtype),
            )

        u, m, v, n, g = _tree.map_unzip(leaf, 5, updates, state.m, state.v, state.n, state.g)
        return u, ScaleByAdanState(count=count, m=m, v=v, n=n, g=g)

    return GradientTransformation(init_fn, update_fn)


def adan(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    mask: MaskOrFn = None,
) -> GradientTransformation:
    """Adan with decoupled weight decay.

    Update rule (see `scale_by_adan` for the direction `d_t`)::

        theta_t = theta_{t-1} - lr(t) * (d_t + weight_decay * theta_{t-1})

    The decay is AdamW's, as in Optax and in the authors' code with `no_prox=True`.
    Algorithm 1 of the paper instead takes the proximal step
    `theta_t = (theta_{t-1} - lr * d_t) / (1 + lr * weight_decay)`, which agrees to first
    order in `lr * weight_decay`. With `weight_decay=0` the two are identical.

    Args:
        mask: which leaves to decay: a pytree of bools shaped like the params, or a function
            of the params returning one. By default every leaf is decayed.

    References:
        Xie, Zhou, Li, Lin and Yan, "Adan: Adaptive Nesterov Momentum Algorithm for Faster
        Optimizing Deep Models", IEEE TPAMI 2024. arXiv:2208.06677
    """
    return chain(
        scale_by_adan(b1, b2, b3, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
