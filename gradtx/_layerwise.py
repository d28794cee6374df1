"""Layer-wise methods: the trust ratio (LARS, LAMB, Fromage) and NovoGrad's per-layer moment.

A "layer" is one leaf of the parameter tree: every norm below is taken over a whole leaf.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _numerics, _tree
from ._adam import scale_by_adam
from ._base import EmptyState, GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._decay import MaskOrFn, add_decayed_weights, resolve_mask
from ._scaling import ScaleByScheduleState, scale_by_learning_rate
from ._sgd import trace


def _leaf_norm(x: chex.Array, dtype) -> chex.Array:
    """The L2 norm of a whole leaf, summed in its compute dtype, as a scalar of `dtype`.

    The gradient of the norm is 0, not NaN, at 0.
    """
    return _numerics.safe_sqrt(jnp.sum(_numerics.abs_sq(_numerics.widen(x)))).astype(dtype)


def scale_by_trust_ratio(
    min_norm: float = 0.0,
    trust_coefficient: float = 1.0,
    eps: float = 0.0,
    *,
    mask: MaskOrFn = None,
) -> GradientTransformation:
    """Rescales each leaf's update by the ratio of the parameter norm to the update norm.

    Update rule (per leaf; norms are L2 norms of the whole leaf)::

        p   = max(||theta_{t-1}||, min_norm)
        n   = max(||g_t||, min_norm)
        r   = trust_coefficient * p / (n + eps)     (r = 1 if p == 0 or n == 0)
        u_t = r * g_t

    Each leaf then moves by a step proportional to its own size, whatever the scale of its
    gradient: the "trust ratio" of LARS, LAMB and Fromage. The ratio is 1 for a leaf whose
    parameters or update are all zero (a freshly zero-initialised bias still learns).

    Args:
        min_norm: lower bound for both norms, >= 0.
        trust_coefficient: multiplies the ratio, >= 0 (LARS's `eta`).
        eps: added to the update norm in the denominator, >= 0.
        mask: which leaves to rescale: a pytree of bools shaped like the params, or a function
            of the params returning one; by default every leaf. Unmasked leaves pass through
            unchanged. (Optax spells this `optax.masked(scale_by_trust_ratio(...), mask)`.)

    Raises:
        ValueError: from `update` if `params` is not given.

    References:
        You, Gitman and Ginsburg, "Large Batch Training of Convolutional Networks", 2017.
        arXiv:1708.03888
    """
    fn = "scale_by_trust_ratio"
    _checks.non_negative(fn, "min_norm", min_norm)
    _checks.non_negative(fn, "trust_coefficient", trust_coefficient)
    _checks.non_negative(fn, "eps", eps)

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None):
        _checks.require_params(fn, params)
        _checks.trees_match(fn, "params", params, "updates", updates)
        flags = resolve_mask(fn, mask, params)

        def leaf(u, p, flag):
            if isinstance(flag, bool | np.bool_) and not flag:
                return u
            cd = _numerics.real_dtype(_numerics.compute_dtype(u.dtype))
            lower = _numerics.as_dtype(min_norm, cd)
            p_norm = jnp.maximum(_leaf_norm(p, cd), lower)
            u_norm = jnp.maximum(_leaf_norm(u, cd), lower)
            ratio = (
                _numerics.as_dtype(trust_coefficient, cd)
                * p_norm
                / (u_norm + _numerics.as_dtype(eps, cd))
            )
            ratio = jnp.where((p_norm == 0) | (u_norm == 0), jnp.ones_like(ratio), ratio)
            scaled = (_numerics.widen(u) * ratio).astype(u.dtype)
            return scaled if isinstance(flag, bool | np.bool_) else jnp.where(flag, scaled, u)

        return jax.tree.map(leaf, updates, params, flags), state

    return GradientTransformation(init_fn, update_fn)


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    *,
    mask: MaskOrFn = None,
) -> GradientTransformation:
    """LAMB: Adam's direction plus decoupled decay, rescaled per leaf by the trust ratio.

    Update rule (per leaf; `r_t` is `scale_by_adam`'s bias-corrected direction)::

        d_t     = r_t + weight_decay * theta_{t-1}
        theta_t = theta_{t-1} - lr(t) * (||theta_{t-1}|| / ||d_t||) * d_t

    with the ratio taken as 1 when either norm is 0 (see `scale_by_trust_ratio`). This is
    `chain(scale_by_adam(...), add_decayed_weights(...), scale_by_trust_ratio(),
    scale_by_learning_rate(lr))`; the paper's scaling function `phi` is the identity.

    Args:
        mask: which leaves to decay (not which to rescale); by default every leaf.

    References:
        You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer and Hsieh, "Large
        Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020.
        arXiv:1904.00962
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: float = 0.0,
    weight_decay_mask: MaskOrFn = None,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    trust_ratio_mask: MaskOrFn = None,
    momentum: float = 0.9,
    nesterov: bool = False,
) -> GradientTransformation:
    """LARS: SGD with momentum whose per-leaf learning rate follows the trust ratio.

    Update rule (per leaf)::

        d_t     = g_t + weight_decay * theta_{t-1}
        r_t     = trust_coefficient * ||theta_{t-1}|| / (||d_t|| + eps)   (1 if a norm is 0)
        v_t     = momentum * v_{t-1} + lr(t) * r_t * d_t
        theta_t = theta_{t-1} - v_t              (Nesterov: lr(t) * r_t * d_t + momentum * v_t)

    This is `chain(add_decayed_weights(...), scale_by_trust_ratio(...),
    scale_by_learning_rate(lr), trace(momentum, nesterov))`, as in Optax. The paper's local
    learning rate divides by `||g_t|| + weight_decay * ||theta_{t-1}||` (an upper bound of
    `||d_t||`); the two agree when `weight_decay` is 0.

    Args:
        weight_decay_mask: which leaves to decay; by default every leaf (Optax's `True`).
        trust_ratio_mask: which leaves to rescale by the trust ratio; by default every leaf.
            Biases and normalisation scales are commonly excluded from both.

    References:
        You, Gitman and Ginsburg, "Large Batch Training of Convolutional Networks", 2017.
        arXiv:1708.03888
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps, mask=trust_ratio_mask),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov),
    )


def _fromage_step(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """The step of Fromage after the trust ratio: `(theta - lr * d) / sqrt(1 + lr^2) - theta`."""
    fn = "fromage"
    _checks.number(fn, "learning_rate", learning_rate)
    scheduled = callable(learning_rate)
    if not scheduled:
        _checks.finite(fn, "learning_rate", learning_rate)

    def init_fn(params):
        del params
        return ScaleByScheduleState(count=_numerics.zero_count()) if scheduled else EmptyState()

    def update_fn(updates, state, params=None):
        _checks.require_params(fn, params)
        _checks.trees_match(fn, "params", params, "updates", updates)
        lr = learning_rate(state.count) if scheduled else learning_rate

        def leaf(d, p):
            cd = _numerics.compute_dtype(d.dtype)
            eta = _numerics.as_dtype(lr, cd)
            root = jnp.sqrt(1 + eta * eta)
            # 1 / root - 1, written without cancellation for small learning rates.
            shrink = -(eta * eta) / (root * (1 + root))
            u = -(eta / root) * d.astype(cd) + shrink * p.astype(cd)
            return u.astype(d.dtype)

        if scheduled:
            state = ScaleByScheduleState(count=_numerics.safe_increment(state.count))
        return jax.tree.map(leaf, updates, params), state

    return GradientTransformation(init_fn, update_fn)


def fromage(learning_rate: ScalarOrSchedule, min_norm: float = 1e-6) -> GradientTransformation:
    """Fromage: per-leaf relative steps followed by a shrink that keeps norms from growing.

    Update rule (per leaf; norms are floored at `min_norm`)::

        d_t     = (||theta_{t-1}|| / ||g_t||) * g_t
        theta_t = (theta_{t-1} - lr(t) * d_t) / sqrt(1 + lr(t)^2)

    Each leaf moves by a fraction `lr` of its own norm, in the direction of its gradient; the
    division by `sqrt(1 + lr^2)` undoes the growth of the norm that such a step would cause
    (to first order the step is orthogonal to `theta`). This is
    `chain(scale_by_trust_ratio(min_norm), <the step above>)`.

    Args:
        learning_rate: the relative step size (a constant or a schedule); the paper uses
            about 0.01.
        min_norm: lower bound of both norms, >= 0.

    References:
        Bernstein, Vahdat, Yue and Liu, "On the distance between two neural networks and the
        stability of learning", NeurIPS 2020. arXiv:2002.03432
    """
    return chain(scale_by_trust_ratio(min_norm), _fromage_step(learning_rate))


class ScaleByNovogradState(NamedTuple):
    """State of `scale_by_novograd`: step count, momentum, and one second moment per leaf."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_novograd(
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """NovoGrad's direction: gradients normalised by a per-leaf second moment, with momentum.

    Update rule (per leaf; `||g||` is the L2 norm of the whole leaf)::

        v_1 = ||g_1||^2
        v_t = b2 * v_{t-1} + (1 - b2) * ||g_t||^2                   (t > 1)
        m_t = b1 * m_{t-1} + g_t / (sqrt(v_t + eps_root) + eps) + weight_decay * theta_{t-1}
        u_t = m_t

    The second moment is one scalar per leaf (per layer), so the state is about the size of
    the parameters, half of Adam's, and the normalised gradient of each layer has norm about 1.

    Args:
        b1: momentum decay, in [0, 1). The momentum is not averaged (no `1 - b1` factor).
        b2: decay of the per-leaf second moment, in [0, 1).
        eps: added to the denominator outside the square root, >= 0.
        eps_root: added inside the square root, >= 0.
        weight_decay: decay added to the normalised gradient, >= 0 (needs `params`).
        mu_dtype: dtype of the momentum buffer; by default each leaf's own dtype.

    References:
        Ginsburg, Castonguay, Hrinchuk, Kuchaiev, Lavrukhin, Leary, Li, Nguyen, Zhang and
        Cohen, "Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of
        Deep Networks", 2019. arXiv:1905.11286
    """
    fn = "scale_by_novograd"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_unit_interval(fn, "b2", b2)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "eps_root", eps_root)
    _checks.non_negative(fn, "weight_decay", weight_decay)
    mu_dtype = _checks.float_dtype(fn, "mu_dtype", mu_dtype)
    decays = not (isinstance(weight_decay, int | float) and weight_decay == 0)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        nu = jax.tree.map(lambda p: jnp.zeros([], _numerics.real_dtype(p.dtype)), params)
        return ScaleByNovogradState(
            count=_numerics.zero_count(), mu=_tree.zeros_like(params, mu_dtype), nu=nu
        )

    def update_fn(updates, state, params=None):
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)
        if decays:
            _checks.require_params(fn, params)
            _checks.trees_match(fn, "params", params, "updates", updates)
        first = state.count == 0

        def leaf(g, m, v, p=None):
            cd = _numerics.compute_dtype(g.dtype)
            rd = _numerics.real_dtype(cd)
            c1, c2 = _numerics.as_dtype(b1, cd), _numerics.as_dtype(b2, rd)
            gw = g.astype(cd)
            g_sq = jnp.sum(_numerics.abs_sq(gw))
            v_new = jnp.where(first, g_sq, c2 * v.astype(rd) + _numerics.one_minus(b2, rd) * g_sq)
            denom = jnp.sqrt(v_new + _numerics.as_dtype(eps_root, rd)) + _numerics.as_dtype(eps, rd)
            step = gw / denom
            if p is not None:
                step = step + _numerics.as_dtype(weight_decay, cd) * p.astype(cd)
            m_new = c1 * m.astype(cd) + step
            return m_new.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

        rest = (params,) if decays else ()
        u, mu, nu = _tree.map_unzip(leaf, 3, updates, state.mu, state.nu, *rest)
        return u, ScaleByNovogradState(count=_numerics.safe_increment(state.count), mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def novograd(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """NovoGrad: `chain(scale_by_novograd(...), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_novograd` for `m_t`)::

        theta_t = theta_{t-1} - lr(t) * m_t

    The defaults are Optax's: `eps=1e-6` here, `1e-8` in `scale_by_novograd`.

    References:
        Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments for
        Training of Deep Networks", 2019. arXiv:1905.11286
    """
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay, mu_dtype=mu_dtype),
        scale_by_learning_rate(learning_rate),
    )
