"""Shampoo: Kronecker-factored preconditioning of 2-D gradients, diagonal AdaGrad elsewhere."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._scaling import scale_by_learning_rate


class ScaleByShampooState(NamedTuple):
    """State of `scale_by_shampoo`.

    `count` is the int32 step count; `mu` the momentum, shaped like the params; `stats` holds,
    per leaf, the pair `(L, R)` of statistics for a preconditioned matrix or the diagonal
    accumulator `H` (shaped like the leaf) otherwise; `roots` holds, per leaf, the stored pair
    `(L^{-1/4}, R^{-1/4})` when `preconditioning_compute_steps > 1` and the leaf is a
    preconditioned matrix, else an empty tuple.
    """

    count: chex.Array
    mu: Updates
    stats: Any
    roots: Any


def _is_matrix(x: Any, max_dim: int) -> bool:
    shape = jnp.shape(x)
    return len(shape) == 2 and max(shape) <= max_dim


def _inverse_fourth_root(stat: chex.Array, floor: chex.Array) -> chex.Array:
    """`stat^{-1/4}` of a symmetric matrix, eigenvalues clamped below at `floor`."""
    w, v = jnp.linalg.eigh(stat)
    w = jnp.maximum(w, floor)
    return (v * (w**-0.25)[None, :]) @ v.T


def scale_by_shampoo(
    b1: float = 0.9,
    b2: float = 1.0,
    eps: float = 1e-6,
    *,
    max_preconditioner_dim: int = 1024,
    preconditioning_compute_steps: int = 1,
) -> GradientTransformation:
    """Shampoo's preconditioned direction, with heavy-ball momentum.

    Update rule for a 2-D leaf `G` of shape `(m, n)` with `m, n <= max_preconditioner_dim`
    (`w = 1` if `b2 == 1`, the paper's running sum; `w = 1 - b2` otherwise, an EMA)::

        L_0 = eps * I_m,   R_0 = eps * I_n
        L_t = b2 * L_{t-1} + w * G_t G_t^T
        R_t = b2 * R_{t-1} + w * G_t^T G_t
        P_t = L_t^{-1/4} G_t R_t^{-1/4}
        u_t = m_t = b1 * m_{t-1} + P_t          (m_0 = 0)

    Every other leaf (vectors, scalars, tensors of rank 3 or more, matrices with a side longer
    than `max_preconditioner_dim`) gets the paper's order-1 rule applied element-wise, i.e.
    diagonal AdaGrad (a vector is not given the full-matrix `H^{-1/2}` of the paper)::

        H_0 = eps,   H_t = b2 * H_{t-1} + w * G_t^2,   P_t = G_t / sqrt(H_t)

    The inverse fourth roots come from a symmetric eigendecomposition (`jnp.linalg.eigh`),
    `L^{-1/4} = V diag(max(lambda, eps)^{-1/4}) V^T`. With `b2 = 1` every eigenvalue of `L_t`
    is at least `eps`, so the clamp only removes round-off; with `b2 < 1` the decayed
    `eps * I` no longer bounds them and the clamp at `eps` acts as the damping. The roots are
    recomputed at steps 1, 1 + k, 1 + 2k, ... for `k = preconditioning_compute_steps`; when
    `k > 1` they are kept in the state and reused in between (the statistics are still updated
    at every step).

    Statistics and stored roots are kept in float32 for bfloat16 and float16 leaves (float64
    for float64 leaves), and the eigendecomposition runs in that dtype; the momentum and the
    update keep the leaf's dtype. State memory per preconditioned `(m, n)` leaf: `m^2 + n^2`
    for `L` and `R`, another `m^2 + n^2` for the roots when `k > 1`, plus `m * n` for the
    momentum; other leaves hold two buffers of their own size (`H` and the momentum).

    Args:
        b1: heavy-ball momentum on the preconditioned direction, in [0, 1); 0 for none.
        b2: decay of the statistics, in [0, 1]; 1 (the default) sums them as in the paper.
        eps: the initial statistics `eps * I` (`eps` for diagonal leaves) and the eigenvalue
            floor, > 0.
        max_preconditioner_dim: matrices with a side longer than this get the diagonal rule.
        preconditioning_compute_steps: recompute the inverse roots every this many steps.

    References:
        Gupta, Koren and Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization",
        ICML 2018. arXiv:1802.09568
    """
    fn = "scale_by_shampoo"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_closed_unit_interval(fn, "b2", b2)
    _checks.positive(fn, "eps", eps)
    _checks.positive_int(fn, "max_preconditioner_dim", max_preconditioner_dim)
    _checks.positive_int(fn, "preconditioning_compute_steps", preconditioning_compute_steps)
    store_roots = preconditioning_compute_steps > 1

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            if jnp.iscomplexobj(leaf):
                raise TypeError(
                    f"{fn}: params{jax.tree_util.keystr(path)} has dtype {leaf.dtype}; Shampoo "
                    f"supports real floating-point leaves only."
                )

        def leaf(p):
            cd = _numerics.compute_dtype(p.dtype)
            e = _numerics.as_dtype(eps, cd)
            if not _is_matrix(p, max_preconditioner_dim):
                return jnp.full(jnp.shape(p), e, cd), ()
            m, n = p.shape
            stats = (e * jnp.eye(m, dtype=cd), e * jnp.eye(n, dtype=cd))
            roots = (jnp.zeros((m, m), cd), jnp.zeros((n, n), cd)) if store_roots else ()
            return stats, roots

        stats, roots = _tree.map_unzip(leaf, 2, params)
        return ScaleByShampooState(
            count=_numerics.zero_count(),
            mu=_tree.zeros_like(params),
            stats=stats,
            roots=roots,
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)
        count = _numerics.safe_increment(state.count)

        def weights(cd):
            one = _numerics.as_dtype(1.0, cd)
            if isinstance(b2, int | float):
                return (
                    (one, one)
                    if b2 == 1
                    else (_numerics.as_dtype(b2, cd), _numerics.one_minus(b2, cd))
                )
            decay = _numerics.as_dtype(b2, cd)  # traced (e.g. injected): the same rule, on device
            return decay, jnp.where(decay == one, one, one - decay)

        def leaf(g, m, stats, roots):
            cd = _numerics.compute_dtype(g.dtype)
            gw = g.astype(cd)
            decay, w = weights(cd)
            e = _numerics.as_dtype(eps, cd)
            if not _is_matrix(g, max_preconditioner_dim):
                h = decay * stats + w * gw * gw
                p = gw / jnp.sqrt(h)
                new_stats, new_roots = h, roots
            else:
                left = decay * stats[0] + w * (gw @ gw.T)
                right = decay * stats[1] + w * (gw.T @ gw)

                def compute(_):
                    return _inverse_fourth_root(left, e), _inverse_fourth_root(right, e)

                if store_roots:
                    due = (count - 1) % preconditioning_compute_steps == 0
                    new_roots = jax.lax.cond(due, compute, lambda _: roots, None)
                else:
                    new_roots = ()
                left_root, right_root = new_roots if store_roots else compute(None)
                p = left_root @ gw @ right_root
                new_stats = (left, right)
            mu_new = _numerics.as_dtype(b1, cd) * m.astype(cd) + p
            return mu_new.astype(g.dtype), mu_new.astype(m.dtype), new_stats, new_roots

        u, mu, stats, roots = _tree.map_unzip(leaf, 4, updates, state.mu, state.stats, state.roots)
        return u, ScaleByShampooState(count=count, mu=mu, stats=stats, roots=roots)

    return GradientTransformation(init_fn, update_fn)


def shampoo(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 1.0,
    eps: float = 1e-6,
    *,
    max_preconditioner_dim: int = 1024,
    preconditioning_compute_steps: int = 1,
) -> GradientTransformation:
    """Shampoo: `chain(scale_by_shampoo(...), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_shampoo` for the direction `u_t`)::

        theta_t = theta_{t-1} - lr(t) * u_t

    With `b1 = 0` and `b2 = 1` this is Algorithm 1 of the paper for matrices.

    References:
        Gupta, Koren and Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization",
        ICML 2018. arXiv:1802.09568
    """
    return chain(
        scale_by_shampoo(
            b1,
            b2,
            eps,
            max_preconditioner_dim=max_preconditioner_dim,
            preconditioning_compute_steps=preconditioning_compute_steps,
        ),
        scale_by_learning_rate(learning_rate),
    )
