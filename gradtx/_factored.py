"""Memory-efficient second moments: Adafactor's factored estimate and SM3's cover sets.

Both keep, for a matrix of shape (n, m), O(n + m) numbers of second-moment state instead of
Adam's n * m.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _numerics, _tree
from ._averaging import ema
from ._base import EmptyState, GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._decay import MaskOrFn, add_decayed_weights
from ._processing import clip_by_block_rms
from ._scaling import scale, scale_by_learning_rate


def _factored_axes(shape: tuple, factored: bool, min_dim_size_to_factor: int):
    """`(a, b)`, the largest and second-largest axes of `shape`, or None if not factored.

    A leaf is factored when it has at least 2 dimensions and its second-largest dimension
    has at least `min_dim_size_to_factor` entries. Ties go to the earlier axis as `b`.
    """
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape, kind="stable")
    b, a = int(order[-2]), int(order[-1])
    if shape[b] < min_dim_size_to_factor:
        return None
    return a, b


class ScaleByFactoredRmsState(NamedTuple):
    """State of `scale_by_factored_rms`.

    For a factored leaf, `v_row` is the running mean of `g^2` over the leaf's largest axis
    and `v_col` over its second-largest axis, and `v` is an empty placeholder of shape (0,);
    for any other leaf, `v` holds the full second moment and `v_row`, `v_col` are empty.
    """

    count: chex.Array
    v_row: Updates
    v_col: Updates
    v: Updates


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: float = 0.8,
    step_offset: int = 0,
    min_dim_size_to_factor: int = 128,
    epsilon: float = 1e-30,
) -> GradientTransformation:
    """Rescales updates by Adafactor's factored estimate of the root mean square gradient.

    Update rule (t = 1, 2, ...; for a factored leaf `a` is its largest axis and `b` its
    second largest; means are over the named axis, shapes broadcast back)::

        beta_t = 1 - (t - step_offset)^(-decay_rate)      (0 at the first step)
        G_t    = g_t^2 + epsilon
        R_t    = beta_t * R_{t-1} + (1 - beta_t) * mean_a(G_t)
        C_t    = beta_t * C_{t-1} + (1 - beta_t) * mean_b(G_t)
        V_t    = R_t * C_t / mean_b(R_t)                     (factored leaves)
        V_t    = beta_t * V_{t-1} + (1 - beta_t) * G_t       (other leaves)
        u_t    = g_t / sqrt(V_t)

    For a matrix, `V_t` is the rank-1 matrix closest to the full second moment in the
    I-divergence sense (the paper's Algorithm 4, written with means instead of sums). Leaves
    with fewer than 2 dimensions, or whose second-largest dimension is below
    `min_dim_size_to_factor`, keep a full second moment (the paper's Algorithm 5). Steps
    before `step_offset` count as the first step.

    Args:
        factored: factor the second moment of leaves with 2 or more dimensions.
        decay_rate: exponent of the decay schedule `1 - t^(-decay_rate)`, > 0.
        step_offset: the step the decay schedule restarts from (e.g. when fine-tuning), >= 0.
        min_dim_size_to_factor: factor only if the second-largest dimension is at least this.
        epsilon: added to `g^2`, >= 0 (the paper's `epsilon_1`).

    References:
        Shazeer and Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
        ICML 2018. arXiv:1804.04235
    """
    fn = "scale_by_factored_rms"
    _checks.positive(fn, "decay_rate", decay_rate)
    _checks.non_negative_int(fn, "step_offset", step_offset)
    _checks.non_negative_int(fn, "min_dim_size_to_factor", min_dim_size_to_factor)
    _checks.non_negative(fn, "epsilon", epsilon)
    axes_of = functools.partial(
        _factored_axes, factored=factored, min_dim_size_to_factor=min_dim_size_to_factor
    )

    def shapes(shape):
        """Shapes of (v_row, v_col, v) for a leaf of `shape`; (0,) marks an unused buffer."""
        axes = axes_of(shape)
        if axes is None:
            return (0,), (0,), tuple(shape)
        return tuple(np.delete(shape, axes[0])), tuple(np.delete(shape, axes[1])), (0,)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        zeros = lambda p: tuple(jnp.zeros(s, p.dtype) for s in shapes(p.shape))
        rows, cols, vs = _tree.map_unzip(zeros, 3, params)
        return ScaleByFactoredRmsState(_numerics.zero_count(), rows, cols, vs)

    def update_fn(updates, state, params=None):
        del params
        buffers = ("v_row", state.v_row), ("v_col", state.v_col), ("v", state.v)
        _leaf_states(fn, updates, buffers, lambda shape: list(shapes(shape)))
        t = jnp.maximum(state.count - step_offset, 0) + 1

        def leaf(g, row, col, v):
            cd = _numerics.compute_dtype(g.dtype)
            rd = _numerics.real_dtype(cd)
            beta = 1 - t.astype(rd) ** -_numerics.as_dtype(decay_rate, rd)
            gw = g.astype(cd)
            g_sq = _numerics.abs_sq(gw) + _numerics.as_dtype(epsilon, rd)
            axes = axes_of(g.shape)
            if axes is None:
                v_new = beta * v.astype(rd) + (1 - beta) * g_sq
                u = gw * _inverse_sqrt(v_new)
                return u.astype(g.dtype), row, col, v_new.astype(v.dtype)
            a, b = axes
            row_new = beta * row.astype(rd) + (1 - beta) * jnp.mean(g_sq, axis=a)
            col_new = beta * col.astype(rd) + (1 - beta) * jnp.mean(g_sq, axis=b)
            row_rel = row_new / jnp.mean(row_new, axis=b if b < a else b - 1, keepdims=True)
            u = gw * _inverse_sqrt(jnp.expand_dims(row_rel, a) * jnp.expand_dims(col_new, b))
            return u.astype(g.dtype), row_new.astype(row.dtype), col_new.astype(col.dtype), v

        u, rows, cols, vs = _tree.map_unzip(leaf, 4, updates, state.v_row, state.v_col, state.v)
        return u, ScaleByFactoredRmsState(_numerics.safe_increment(state.count), rows, cols, vs)

    return GradientTransformation(init_fn, update_fn)


def _leaf_states(fn: str, updates: Any, trees: Any, expected) -> list[list]:
    """For each named state tree, its entries per leaf of `updates`, checked for structure
    and against the shapes `expected(leaf.shape)` (one entry per tree)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(updates)
    per_leaf = []
    for name, tree in trees:
        try:
            per_leaf.append(treedef.flatten_up_to(tree))
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"{fn}: `state.{name}` does not have the tree structure of `updates`. "
                f"{_checks.STATE_HINT}"
            ) from e
    for (path, g), *got in zip(flat, *per_leaf, strict=True):
        got = jax.tree.map(lambda x: tuple(x.shape), got)
        if got != expected(tuple(g.shape)):
            key = jax.tree_util.keystr(path)
            held = ", ".join(f"state.{n}{key} {s}" for (n, _), s in zip(trees, got, strict=True))
            raise ValueError(
                f"{fn}: updates{key} has shape {tuple(g.shape)}, but the state holds shapes "
                f"{held}, built for another shape. {_checks.STATE_HINT}"
            )
    return per_leaf


def _inverse_sqrt(v: chex.Array) -> chex.Array:
    """`1 / sqrt(v)`, and 0 where `v` is 0 (the convention 0 / 0 = 0 for an all-zero slice)."""
    positive = v > 0
    return jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, v, 1)), 0)


def _stateless(update_fn) -> GradientTransformation:
    return GradientTransformation(lambda params: EmptyState(), update_fn)


def _scale_by_param_block_rms(min_scale: float = 1e-3) -> GradientTransformation:
    """Multiplies each leaf by `max(rms(param), min_scale)` (Adafactor's relative step)."""
    fn = "adafactor"

    def update_fn(updates, state, params=None):
        _checks.require_params(fn, params)
        _checks.trees_match(fn, "params", params, "updates", updates)

        def leaf(u, p):
            cd = _numerics.compute_dtype(u.dtype)
            rms = jnp.sqrt(jnp.mean(_numerics.abs_sq(p.astype(cd))))
            factor = jnp.maximum(rms, _numerics.as_dtype(min_scale, cd))
            return (u.astype(cd) * factor).astype(u.dtype)

        return jax.tree.map(leaf, updates, params), state

    return _stateless(update_fn)


def _relative_step_size(count: chex.Array) -> chex.Array:
    """The paper's step size without a learning rate: `min(1e-2, 1 / sqrt(t))`, t = count + 1."""
    t = (count + 1).astype(jnp.float32)
    return jnp.minimum(jnp.float32(1e-2), jax.lax.rsqrt(t))


def adafactor(
    learning_rate: ScalarOrSchedule | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    momentum: float | None = None,
    dtype_momentum: Any = None,
    weight_decay_rate: float | None = None,
    eps: float = 1e-30,
    factored: bool = True,
    weight_decay_mask: MaskOrFn = None,
) -> GradientTransformation:
    """Adafactor: factored second moments, update clipping and steps relative to the params.

    Update rule (per leaf; `u_t` from `scale_by_factored_rms`, rms is over the whole leaf)::

        c_t     = u_t / max(1, rms(u_t) / clipping_threshold)
        s_t     = lr(t) * max(rms(theta_{t-1}), 1e-3) * c_t   (rms factor if
                                                              multiply_by_parameter_scale)
        m_t     = momentum * m_{t-1} + (1 - momentum) * s_t  (if momentum is not None)
        theta_t = theta_{t-1} - (m_t + weight_decay_rate * theta_{t-1})

    Without a `learning_rate`, the paper's schedule `lr(t) = min(1e-2, 1 / sqrt(t))` is used,
    which with `multiply_by_parameter_scale` is the paper's relative step size. (Optax's
    `adafactor` uses a learning rate of 1 when none is given; a learning rate given here
    means the same as in Optax.) The weight decay is not multiplied by the learning rate,
    as in Optax.

    For a (n, m) matrix with both dimensions at least `min_dim_size_to_factor`, the
    optimizer state is n + m numbers (without momentum), against 2 * n * m for Adam.

    Args:
        learning_rate: a constant or a schedule, or None for the paper's relative schedule.
        min_dim_size_to_factor: see `scale_by_factored_rms`.
        decay_rate: see `scale_by_factored_rms`.
        decay_offset: `step_offset` of `scale_by_factored_rms`.
        multiply_by_parameter_scale: scale each leaf's step by its root mean square.
        clipping_threshold: the paper's `d`, > 0, or None for no clipping.
        momentum: in [0, 1), or None for no momentum buffer (the paper's default).
        dtype_momentum: dtype of the momentum buffer; by default each leaf's dtype (Optax
            defaults to float32).
        weight_decay_rate: decoupled weight decay, >= 0, or None.
        eps: `epsilon` of `scale_by_factored_rms`.
        factored: see `scale_by_factored_rms`.
        weight_decay_mask: which leaves to decay; by default every leaf.

    References:
        Shazeer and Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
        ICML 2018. arXiv:1804.04235
    """
    fn = "adafactor"
    if clipping_threshold is not None:
        _checks.positive(fn, "clipping_threshold", clipping_threshold)
    if momentum is not None:
        _checks.in_unit_interval(fn, "momentum", momentum)
    if weight_decay_rate is not None:
        _checks.non_negative(fn, "weight_decay_rate", weight_decay_rate)
    txs = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)]
    if clipping_threshold is not None:
        txs.append(clip_by_block_rms(clipping_threshold))
    lr = _relative_step_size if learning_rate is None else learning_rate
    txs.append(scale_by_learning_rate(lr, flip_sign=False))
    if multiply_by_parameter_scale:
        txs.append(_scale_by_param_block_rms())
    if momentum is not None:
        txs.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        txs.append(add_decayed_weights(weight_decay_rate, weight_decay_mask))
    txs.append(scale(-1))
    return chain(*txs)


class ScaleBySM3State(NamedTuple):
    """State of `scale_by_sm3`.

    `mu` holds, per leaf, a list with one accumulator vector per axis (for a 0-d or 1-d leaf,
    one accumulator shaped like the leaf); `nu` is the momentum buffer shaped like the params,
    or None when `b1` is 0.
    """

    mu: Updates
    nu: Updates | None


def scale_by_sm3(b1: float = 0.9, b2: float = 1.0, eps: float = 1e-8) -> GradientTransformation:
    """Rescales updates by SM3's second-moment bound kept per row, column, ... of each leaf.

    Update rule (per element `i` of a leaf with k >= 2 axes; `A_j` is the accumulator of axis
    `j`, indexed by `i`'s coordinate `i_j`)::

        nu_i  = b2 * min_j A_j[i_j] + (1 - b2) * g_i^2     (b2 < 1)
        nu_i  = min_j A_j[i_j] + g_i^2                      (b2 = 1, the paper's SM3-II)
        A_j[r] = max over the elements i with i_j = r of nu_i
        s_i   = g_i / sqrt(nu_i + eps)                      (0 where nu_i = 0)
        m     = b1 * m + (1 - b1) * s                       (u_t = m; u_t = s if b1 = 0)

    `nu_i` is an upper bound on Adagrad's sum of squared gradients, rebuilt each step from one
    vector per axis: a (n, m) matrix keeps n + m accumulator entries, against n * m for
    Adagrad or Adam. A 0-d or 1-d leaf keeps its full Adagrad accumulator. With `b1 = 0` no
    momentum buffer is stored.

    Args:
        b1: momentum decay, in [0, 1).
        b2: decay of the accumulators, in (0, 1]; 1 accumulates sums as in the paper.
        eps: added inside the square root, >= 0.

    References:
        Anil, Gupta, Koren and Singer, "Memory-Efficient Adaptive Optimization",
        NeurIPS 2019. arXiv:1901.11150
    """
    fn = "scale_by_sm3"
    _checks.in_unit_interval(fn, "b1", b1)
    x = _checks.finite(fn, "b2", b2)
    if x is not None and not 0 < x <= 1:
        raise ValueError(f"{fn}: `b2` must be in (0, 1], got {b2!r}.")
    _checks.non_negative(fn, "eps", eps)
    keeps_momentum = not (isinstance(b1, int | float) and b1 == 0)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        mu = jax.tree.map(
            lambda p: [jnp.zeros(s, p.dtype) for s in _accumulator_shapes(p.shape)], params
        )
        nu = jax.tree.map(lambda p: jnp.zeros(p.shape, p.dtype), params) if keeps_momentum else None
        return ScaleBySM3State(mu=mu, nu=nu)

    def update_fn(updates, state, params=None):
        del params
        if keeps_momentum:
            _checks.trees_match(
                fn, "state.nu", state.nu, "updates", updates, hint=_checks.STATE_HINT
            )
        _leaf_states(fn, updates, [("mu", state.mu)], lambda shape: [_accumulator_shapes(shape)])
        leaf = lambda g, acc, m=None: _sm3_leaf(g, acc, m, b1, b2, eps)
        momenta = (state.nu,) if keeps_momentum else ()
        u, mu, nu = _tree.map_unzip(leaf, 3, updates, state.mu, *momenta)
        return u, ScaleBySM3State(mu=mu, nu=nu if keeps_momentum else None)

    return GradientTransformation(init_fn, update_fn)


def _accumulator_shapes(shape: tuple) -> list[tuple]:
    """SM3's accumulator shapes for a leaf: the leaf's own for 0-d and 1-d, else one per axis."""
    return [tuple(shape)] if len(shape) <= 1 else [(n,) for n in shape]


def _sm3_leaf(g, acc, m, b1, b2, eps):
    cd = _numerics.compute_dtype(g.dtype)
    rd = _numerics.real_dtype(cd)
    gw = g.astype(cd)
    c2 = _numerics.as_dtype(b2, rd)
    others = lambda i: tuple(j for j in range(g.ndim) if j != i)
    if g.ndim <= 1:
        bound = acc[0].astype(rd)
    else:
        expanded = [jnp.expand_dims(a.astype(rd), others(i)) for i, a in enumerate(acc)]
        bound = functools.reduce(jnp.minimum, expanded)
    new_weight = jnp.where(c2 == 1, jnp.ones_like(c2), 1 - c2)
    nu = c2 * bound + new_weight * _numerics.abs_sq(gw)
    s = gw * jnp.where(nu > 0, _inverse_sqrt(nu + _numerics.as_dtype(eps, rd)), 0)
    if g.ndim <= 1:
        new_acc = [nu.astype(acc[0].dtype)]
    else:
        new_acc = [jnp.max(nu, axis=others(i)).astype(a.dtype) for i, a in enumerate(acc)]
    if m is None:
        return s.astype(g.dtype), new_acc, None
    m_new = _numerics.ema(b1, m, s, cd)
    return m_new.astype(g.dtype), new_acc, m_new.astype(m.dtype)


def sm3(learning_rate: ScalarOrSchedule, momentum: float | None = 0.9) -> GradientTransformation:
    """SM3: `chain(scale_by_sm3(b1=momentum), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_sm3` for the direction `d_t`)::

        theta_t = theta_{t-1} - lr(t) * d_t

    `momentum=None` (or 0) keeps no momentum buffer: the state is then one vector per axis
    of each leaf, far below Adam's two full-size moments.

    References:
        Anil, Gupta, Koren and Singer, "Memory-Efficient Adaptive Optimization",
        NeurIPS 2019. arXiv:1901.11150
    """
    return chain(
        scale_by_sm3(b1=0.0 if momentum is None else momentum),
        scale_by_learning_rate(learning_rate),
    )
