"""Muon: momentum orthogonalised by a Newton-Schulz iteration, with an AdamW fallback."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _numerics, _tree
from ._adam import adamw
from ._base import (
    GradientTransformation,
    GradientTransformationExtraArgs,
    Params,
    ScalarOrSchedule,
    Updates,
)
from ._combine import chain
from ._decay import add_decayed_weights
from ._partition import partition
from ._scaling import scale_by_learning_rate

NS_COEFFS = (3.4445, -4.7750, 2.0315)

MuonMask = Any | Callable[[Params], Any] | None


class ScaleByMuonState(NamedTuple):
    """State of `scale_by_muon`: the momentum buffer, shaped like the params."""

    mu: Updates


def _check_coeffs(fn: str, ns_coeffs: Any) -> tuple[float, float, float]:
    if not isinstance(ns_coeffs, tuple | list) or len(ns_coeffs) != 3:
        raise ValueError(
            f"{fn}: `ns_coeffs` must be three numbers (a, b, c) of the polynomial "
            f"a*X + b*(X X^T) X + c*(X X^T)^2 X, got {ns_coeffs!r}."
        )
    for i, c in enumerate(ns_coeffs):
        _checks.finite(fn, f"ns_coeffs[{i}]", c)
    return tuple(ns_coeffs)


def _newton_schulz(x: chex.Array, coeffs, steps: int, eps: chex.Numeric) -> chex.Array:
    """The quintic Newton-Schulz iteration on a 2-D array, in `x`'s dtype."""
    transpose = x.shape[0] > x.shape[1]
    if transpose:
        x = x.T
    x = x / (jnp.sqrt(jnp.sum(x * x)) + _numerics.cast_like(eps, x))
    a, b, c = (_numerics.cast_like(k, x) for k in coeffs)

    def body(_, x):
        gram = x @ x.T
        return a * x + (b * gram + c * (gram @ gram)) @ x

    x = jax.lax.fori_loop(0, steps, body, x)
    return x.T if transpose else x


def _leaf_path_check(fn: str, tree: Any) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.ndim(leaf) != 2:
            raise ValueError(
                f"{fn}: params{jax.tree_util.keystr(path)} has shape {tuple(jnp.shape(leaf))}, "
                f"but Muon orthogonalises 2-D matrices only. Use `gradtx.muon`, which sends other "
                f"leaves to AdamW, or reshape the leaf to 2-D."
            )
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(
                f"{fn}: params{jax.tree_util.keystr(path)} has dtype {leaf.dtype}; Muon needs "
                f"real floating-point matrices."
            )


def scale_by_muon(
    ns_coeffs: tuple[float, float, float] = NS_COEFFS,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    *,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> GradientTransformation:
    """Orthogonalised momentum: the Muon direction for 2-D weight matrices.

    Update rule (for a leaf of shape `(fan_in, fan_out)`, the layout `x @ W` of JAX
    dense layers; `NS` is `ns_steps` steps of the quintic Newton-Schulz iteration)::

        m_t = beta * m_{t-1} + (1 - beta) * g_t
        d_t = beta * m_t + (1 - beta) * g_t          (nesterov=True; d_t = m_t otherwise)
        X_0 = D / (||D||_F + eps),  D = d_t, transposed if fan_in > fan_out (fewer rows)
        X_k = a X + b (X X^T) X + c (X X^T)^2 X      (k = 1 .. ns_steps), (a, b, c) = ns_coeffs
        u_t = sqrt(max(1, fan_out / fan_in)) * X_ns  (transposed back)

    `X_ns` approximates `U V^T` for `D = U S V^T`: each step maps every singular value `s` of
    `X` to `a s + b s^3 + c s^5` and keeps the singular vectors. The default coefficients trade
    exactness for speed: they do not converge to 1 but, after 5 steps, send every singular
    value of `X_0` in [3e-3, 1] into [0.68, 1.21]. Smaller ones stay smaller (1e-3 -> 0.47).

    The shape factor is the square root of `fan_out / fan_in`, at least 1. It matches Optax's
    default and, for PyTorch's `(out, in)` layout, the reference implementation's
    `sqrt(max(1, rows / cols))`. The momentum is not bias-corrected (as in the reference
    implementation; Optax divides by `1 - beta^t`); since `X_0` is normalised, the two agree
    once `beta^t` is negligible and differ only in how `g_t` and `m_t` are mixed before.

    Arithmetic is in float32 for bfloat16 and float16 leaves, including the Newton-Schulz
    matrix products (the reference implementation runs them in bfloat16 on GPUs for speed;
    float32 keeps the update a function of the gradient alone, not of the accumulation order).

    Args:
        ns_coeffs: the coefficients `(a, b, c)` of the quintic iteration.
        ns_steps: the number of Newton-Schulz steps, an integer > 0.
        beta: the momentum decay, in [0, 1).
        eps: added to the Frobenius norm before dividing, >= 0.
        mu_dtype: dtype of the momentum buffer; by default each leaf's own dtype.
        nesterov: feed the Nesterov look-ahead `beta * m_t + (1 - beta) * g_t` to the
            iteration instead of `m_t`.

    Raises:
        ValueError: from `init`, if a leaf is not 2-D (use `muon`, which routes such leaves to
            AdamW).

    References:
        Jordan, Jin, Boza, You, Cesista, Newhouse and Bernstein, "Muon: An optimizer for hidden
        layers in neural networks", blog post, 2024, https://kellerjordan.github.io/posts/muon/.
        Bernstein and Newhouse, "Old Optimizer, New Norm: An Anthology", 2024.
        arXiv:2409.20325
    """
    fn = "scale_by_muon"
    coeffs = _check_coeffs(fn, ns_coeffs)
    _checks.positive_int(fn, "ns_steps", ns_steps)
    _checks.in_unit_interval(fn, "beta", beta)
    _checks.non_negative(fn, "eps", eps)
    mu_dtype = _checks.float_dtype(fn, "mu_dtype", mu_dtype)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        _leaf_path_check(fn, params)
        return ScaleByMuonState(mu=_tree.zeros_like(params, mu_dtype))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)

        def leaf(g, m):
            cd = _numerics.compute_dtype(g.dtype)
            b = _numerics.as_dtype(beta, cd)
            gw = g.astype(cd)
            m_new = b * m.astype(cd) + (1 - b) * gw
            d = b * m_new + (1 - b) * gw if nesterov else m_new
            fan_in, fan_out = g.shape
            shape_scale = _numerics.as_dtype(math.sqrt(max(1.0, fan_out / fan_in)), cd)
            u = shape_scale * _newton_schulz(d, coeffs, ns_steps, eps)
            return u.astype(g.dtype), m_new.astype(m.dtype)

        u, mu = _tree.map_unzip(leaf, 2, updates, state.mu)
        return u, ScaleByMuonState(mu=mu)

    return GradientTransformation(init_fn, update_fn)


def _resolve_muon_mask(fn: str, muon_mask: MuonMask, tree: Any) -> tuple[Any, list[bool]]:
    """The treedef of `tree` and one static bool per leaf (True: the leaf goes to Muon)."""
    leaves, treedef = jax.tree.flatten(tree)
    if muon_mask is None:
        return treedef, [jnp.ndim(x) == 2 for x in leaves]
    mask = muon_mask(tree) if callable(muon_mask) else muon_mask
    for path, flag in jax.tree_util.tree_flatten_with_path(mask)[0]:
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(
                f"{fn}: muon_mask{jax.tree_util.keystr(path)} is {flag!r}; the mask must hold "
                f"Python bools (it decides which leaves go to Muon when the step is traced, so "
                f"it cannot be an array)."
            )
    _checks.trees_match(
        fn,
        "params",
        tree,
        "muon_mask",
        mask,
        hint="Give one bool per parameter leaf, or a function of the params returning such a tree.",
    )
    flags = treedef.flatten_up_to(mask)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    for path, flag, leaf in zip(paths, flags, leaves, strict=True):
        if flag and jnp.ndim(leaf) != 2:
            raise ValueError(
                f"{fn}: muon_mask{path} is True, but params{path} has shape "
                f"{tuple(jnp.shape(leaf))}; Muon needs 2-D leaves. Set it to False to use AdamW."
            )
    return treedef, [bool(f) for f in flags]


def _labels(muon_mask: MuonMask):
    """A `param_labels` function for `partition`: "muon" or "adam" for each leaf."""

    def labels(tree):
        treedef, flags = _resolve_muon_mask("muon", muon_mask, tree)
        return treedef.unflatten(["muon" if f else "adam" for f in flags])

    return labels


def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: tuple[float, float, float] = NS_COEFFS,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    mu_dtype: Any = None,
    nesterov: bool = True,
    adam_learning_rate: ScalarOrSchedule | None = None,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps: float = 1e-8,
    adam_weight_decay: float = 0.0,
    muon_mask: MuonMask = None,
) -> GradientTransformationExtraArgs:
    """Muon for 2-D weights, AdamW for every other leaf.

    Update rule (see `scale_by_muon` for the Muon direction `o_t` and `scale_by_adam` for the
    Adam direction `d_t`)::

        theta_t = theta_{t-1} - lr(t) * (o_t + weight_decay * theta_{t-1})            (Muon leaves)
        theta_t = theta_{t-1} - adam_lr(t) * (d_t + adam_weight_decay * theta_{t-1})  (others)

    By default a leaf goes to Muon when it is 2-D (`ndim == 2`) and to AdamW otherwise (biases,
    scalars, norms' scales). Embedding and output matrices are 2-D but are usually better
    trained by AdamW: pass `muon_mask` to say so.

    Args:
        learning_rate: the Muon learning rate, a constant or a schedule.
        ns_coeffs, ns_steps, beta, eps, mu_dtype, nesterov: see `scale_by_muon` (`mu_dtype`
            is also the dtype of AdamW's first moment).
        weight_decay: decoupled weight decay of the Muon leaves, >= 0.
        adam_learning_rate: the AdamW learning rate; by default `learning_rate`.
        adam_b1, adam_b2, adam_eps, adam_weight_decay: AdamW's `b1`, `b2`, `eps` and
            `weight_decay` for the other leaves.
        muon_mask: which leaves use Muon: a pytree of Python bools shaped like the params, or a
            function of the params returning one. Leaves marked True must be 2-D.

    This is `partition({"muon": muon_chain, "adam": adamw_chain}, labels)`; the state is a
    `PartitionState` whose `inner_states["muon"]` and `inner_states["adam"]` hold the two
    chains' states.

    References:
        Jordan et al., "Muon: An optimizer for hidden layers in neural networks", blog post,
        2024. Bernstein and Newhouse, "Old Optimizer, New Norm: An Anthology", 2024.
        arXiv:2409.20325
    """
    muon_chain = chain(
        scale_by_muon(ns_coeffs, ns_steps, beta, eps, mu_dtype=mu_dtype, nesterov=nesterov),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )
    adam_chain = adamw(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        b1=adam_b1,
        b2=adam_b2,
        eps=adam_eps,
        weight_decay=adam_weight_decay,
        mu_dtype=mu_dtype,
    )
    return partition({"muon": muon_chain, "adam": adam_chain}, _labels(muon_mask))
