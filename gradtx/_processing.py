"""Gradient processing: block and unit-wise clipping, centralization, noise, normalization."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _numerics, _tree
from ._base import EmptyState, GradientTransformation
from ._clipping import clip_scale


def _stateless(update_fn) -> GradientTransformation:
    def init_fn(params):
        del params
        return EmptyState()

    return GradientTransformation(init_fn, update_fn)


def _sum_sq(x: chex.Array, axis=None) -> chex.Array:
    """Sum of `|x|^2` over `axis`, in `x`'s real compute dtype, keeping dimensions."""
    wide = _numerics.widen(x)
    return jnp.sum(_numerics.abs_sq(wide), axis=axis, keepdims=True)


def clip_by_block_rms(threshold: float) -> GradientTransformation:
    """Clips each leaf (block) separately so that its root mean square is at most `threshold`.

    Update rule (for every leaf `g` with `n` elements)::

        rms = sqrt(sum(|g|^2) / n)
        u   = g                      if rms <= threshold
        u   = g * threshold / rms    otherwise

    Leaves below the threshold are returned bit-for-bit unchanged; a leaf whose RMS is inf or
    NaN becomes NaN (the policy of `clip_by_global_norm`).

    Args:
        threshold: the largest RMS allowed per leaf, > 0.

    References:
        Shazeer and Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
        ICML 2018 (update clipping by block RMS). arXiv:1804.04235
    """
    _checks.positive("clip_by_block_rms", "threshold", threshold)

    def leaf(u):
        cd = _numerics.compute_dtype(u.dtype)
        if u.size == 0:
            return u
        rms = _numerics.safe_sqrt(_sum_sq(u).reshape(()) / u.size)
        factor = clip_scale(rms, threshold)
        return (u.astype(cd) * factor.astype(cd)).astype(u.dtype)

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(leaf, updates), state

    return _stateless(update_fn)


def _unit_axes(ndim: int, axis) -> tuple[int, ...] | None:
    """The axes a unit-wise norm sums over: all but the last for ndim >= 2, else the whole leaf."""
    if axis is not None:
        return (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(range(ndim - 1)) if ndim >= 2 else None


def adaptive_grad_clip(
    clipping: float, eps: float = 1e-3, *, axis: int | tuple[int, ...] | None = None
) -> GradientTransformation:
    """Clips each unit's update to `clipping` times the norm of that unit's parameters (AGC).

    A unit is a slice of a leaf: for leaves with ndim >= 2 the norm is taken over all axes but
    the last (one unit per output feature of an `(in, out)` kernel or per output channel of an
    `HWIO` convolution); scalars and vectors are one unit. Update rule, per unit::

        ratio = clipping * max(||theta||, eps)
        u     = g                          if ||g|| < ratio
        u     = g * ratio / ||g||          otherwise

    Units below the bound are returned bit-for-bit unchanged. This transformation needs the
    parameters. For 2-D and 4-D leaves the units are Optax's; for a 3-D leaf Optax sums over
    axis 0 only (a `(in, heads, head_dim)` kernel): pass `axis=0` for that.

    Args:
        clipping: the largest ratio of update norm to parameter norm, > 0 (0.01 to 0.16 in
            the paper, smaller for larger batches).
        eps: the floor on the parameter norm, >= 0, so that zero-initialized units
            (e.g. biases) can still move.
        axis: the axes to take the unit norms over, for layouts the default does not fit
            (e.g. `axis=0` for a `(in, heads, head_dim)` kernel).

    References:
        Brock, De, Smith and Simonyan, "High-Performance Large-Scale Image Recognition Without
        Normalization", ICML 2021. arXiv:2102.06171
    """
    fn = "adaptive_grad_clip"
    _checks.positive(fn, "clipping", clipping)
    _checks.non_negative(fn, "eps", eps)

    def leaf(g, p):
        cd = _numerics.compute_dtype(_numerics.wider(g.dtype, p.dtype))
        axes = _unit_axes(g.ndim, axis)
        g_norm = _numerics.safe_sqrt(_sum_sq(g.astype(cd), axes))
        p_norm = _numerics.safe_sqrt(_sum_sq(p.astype(cd), axes))
        bound = _numerics.as_dtype(clipping, cd) * jnp.maximum(p_norm, _numerics.as_dtype(eps, cd))
        tiny = _numerics.as_dtype(1e-6, cd)  # only guards 0 / 0 when the bound is 0
        clipped = g.astype(cd) * (bound / jnp.maximum(g_norm, tiny))
        return jnp.where(g_norm < bound, g, clipped.astype(g.dtype))

    def update_fn(updates, state, params=None):
        _checks.require_params(fn, params)
        _checks.trees_match(fn, "params", params, "updates", updates)
        return jax.tree.map(leaf, updates, params), state

    return _stateless(update_fn)


def centralize() -> GradientTransformation:
    """Subtracts from each leaf with ndim > 1 its mean over all axes but the last.

    Update rule (for a leaf `g` of shape `(d_1, ..., d_k, n)`, k >= 1; other leaves unchanged)::

        u[..., j] = g[..., j] - mean(g[..., j])

    Each output feature's weight gradient then sums to zero: for an `(in, out)` kernel the mean
    is over the inputs of each output unit, for an `HWIO` convolution over `H, W, I`. (Optax's
    `centralize` averages over all axes but the first, the output axis of PyTorch's layouts.)

    References:
        Yong, Huang, Hua and Zhang, "Gradient Centralization: A New Optimization Technique for
        Deep Neural Networks", ECCV 2020. arXiv:2004.01461
    """

    def leaf(g):
        if g.ndim < 2 or g.size == 0:
            return g
        wide = _numerics.widen(g)
        return (wide - jnp.mean(wide, axis=tuple(range(g.ndim - 1)), keepdims=True)).astype(g.dtype)

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(leaf, updates), state

    return _stateless(update_fn)


class AddNoiseState(NamedTuple):
    """State of `add_noise`: the step count and the raw (uint32) data of a PRNG key."""

    count: chex.Array
    rng_key: chex.Array


def _integer_seed(fn: str, seed: Any) -> None:
    dtype = getattr(seed, "dtype", None)
    is_int = isinstance(seed, int | np.integer) or (
        dtype is not None and jnp.issubdtype(dtype, jnp.integer) and jnp.shape(seed) == ()
    )
    if isinstance(seed, bool | np.bool_) or not is_int:
        raise TypeError(f"{fn}: `seed` must be an integer, got {seed!r}.")


def add_noise(eta: float, gamma: float, seed: int) -> GradientTransformation:
    """Adds annealed Gaussian noise to the updates.

    Update rule (t = 0, 1, ... counts steps; fresh standard normal noise `z_t` per element)::

        sigma_t = sqrt(eta / (1 + t)^gamma)
        u_t     = g_t + sigma_t * z_t

    The noise comes from a PRNG key kept in the state: a given `seed` gives the same noise
    under `jit` and eagerly. It is drawn in float32 for low-precision leaves and added before
    the result is rounded to the leaf's dtype; a complex leaf gets complex noise whose real and
    imaginary parts each have half the variance.

    Args:
        eta: the initial variance, >= 0 (the paper uses 0.01, 0.3 or 1.0).
        gamma: the annealing exponent, >= 0 (0.55 in the paper).
        seed: an integer seed for the noise.

    References:
        Neelakantan et al., "Adding Gradient Noise Improves Learning for Very Deep Networks",
        arXiv preprint, 2015. arXiv:1511.06807
    """
    fn = "add_noise"
    _checks.non_negative(fn, "eta", eta)
    _checks.non_negative(fn, "gamma", gamma)
    _integer_seed(fn, seed)

    def init_fn(params):
        del params
        key = jax.random.key_data(jax.random.key(seed))
        return AddNoiseState(count=_numerics.zero_count(), rng_key=key)

    def update_fn(updates, state, params=None):
        del params
        count = _numerics.safe_increment(state.count)
        leaves, treedef = jax.tree.flatten(updates)
        # One draw per compute dtype (usually a single one) rather than one per leaf: each
        # draw is a separate random-bits kernel, and compiling many of them is slow.
        groups: dict[Any, list[int]] = {}
        for i, g in enumerate(leaves):
            groups.setdefault(_numerics.compute_dtype(g.dtype), []).append(i)
        keys = jax.random.split(jax.random.wrap_key_data(state.rng_key), len(groups) + 1)
        noisy = list(leaves)
        for (cd, members), key in zip(groups.items(), keys[1:], strict=True):
            rd = _numerics.real_dtype(cd)
            variance = _numerics.as_dtype(eta, rd) / count.astype(rd) ** _numerics.as_dtype(
                gamma, rd
            )
            std = jnp.sqrt(variance).astype(cd)
            sizes = [leaves[i].size for i in members]
            noise = jax.random.normal(key, (sum(sizes),), cd)
            offsets = np.cumsum([0, *sizes])
            for i, start, stop in zip(members, offsets[:-1], offsets[1:], strict=True):
                g = leaves[i]
                z = noise[start:stop].reshape(g.shape)
                noisy[i] = (g.astype(cd) + std * z).astype(g.dtype)
        new_key = jax.random.key_data(keys[0])
        return treedef.unflatten(noisy), AddNoiseState(count=count, rng_key=new_key)

    return GradientTransformation(init_fn, update_fn)


def per_example_global_norm_clip(l2_norm_clip: float) -> GradientTransformation:
    """Clips each example's gradient to global norm `l2_norm_clip`, then sums over the batch.

    The input updates hold per-example gradients: every leaf has a leading batch axis of the
    same size `B` (e.g. from `jax.vmap(jax.grad(loss), in_axes=(None, 0))`). The output has the
    shape of the parameters (the batch axis summed out)::

        n_i = sqrt(sum over leaves of |g_i|^2)              for each example i = 1..B
        u   = sum_i g_i * min(1, l2_norm_clip / n_i)

    This is the clipping step of DP-SGD: divide by the batch size and add Gaussian noise of
    standard deviation `noise_multiplier * l2_norm_clip` to get its update. An example whose
    norm is inf or NaN makes the sum NaN (as `clip_by_global_norm` does).

    Args:
        l2_norm_clip: the largest global norm of one example's gradient, > 0.

    References:
        Abadi et al., "Deep Learning with Differential Privacy", ACM CCS 2016. arXiv:1607.00133
    """
    fn = "per_example_global_norm_clip"
    _checks.positive(fn, "l2_norm_clip", l2_norm_clip)

    def update_fn(updates, state, params=None):
        paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(updates)
        if not paths_leaves:
            return updates, state
        first_key, batch = None, None
        for path, g in paths_leaves:
            key = jax.tree_util.keystr(path)
            if g.ndim == 0:
                raise ValueError(
                    f"{fn}: updates{key} has shape (); per-example gradients need a leading "
                    f"batch axis on every leaf."
                )
            if batch is None:
                first_key, batch = key, g.shape[0]
            elif g.shape[0] != batch:
                raise ValueError(
                    f"{fn}: updates{key} has batch size {g.shape[0]}, but updates{first_key} "
                    f"has batch size {batch}; every leaf needs the same leading batch axis."
                )
        leaves = [g for _, g in paths_leaves]
        dtypes = [_numerics.compute_dtype(_numerics.real_dtype(g.dtype)) for g in leaves]
        acc = jnp.dtype(jnp.float64) if jnp.dtype(jnp.float64) in dtypes else jnp.dtype(jnp.float32)
        sq = [
            jnp.sum(_numerics.abs_sq(_numerics.widen(g)).reshape(batch, -1), axis=1, dtype=acc)
            for g in leaves
        ]
        norms = _numerics.safe_sqrt(jnp.sum(jnp.stack(sq), axis=0))
        factors = clip_scale(norms, l2_norm_clip)

        def leaf(g):
            cd = _numerics.compute_dtype(g.dtype)
            f = factors.astype(cd).reshape((batch,) + (1,) * (g.ndim - 1))
            return jnp.sum(g.astype(cd) * f, axis=0).astype(g.dtype)

        summed = treedef.unflatten([leaf(g) for g in leaves])
        if params is not None:
            _checks.trees_match(fn, "params", params, "updates summed over the batch", summed)
        return summed, state

    return _stateless(update_fn)


def normalize_by_update_norm(
    scale_factor: float = 1.0, eps: float = 1e-6
) -> GradientTransformation:
    """Divides the updates by their global norm (plus `eps`) and multiplies by `scale_factor`.

    Update rule::

        n   = sqrt(sum over all leaves of |g|^2)
        u_t = scale_factor * g_t / (n + eps)

    Args:
        scale_factor: the norm of the result (up to `eps`), finite; may be negative.
        eps: added to the norm, >= 0, so that an all-zero update stays finite.

    References:
        Hazan, Levy and Shalev-Shwartz, "Beyond Convexity: Stochastic Quasi-Convex
        Optimization", NeurIPS 2015 (normalized gradient descent). arXiv:1507.02030
    """
    fn = "normalize_by_update_norm"
    _checks.finite(fn, "scale_factor", scale_factor)
    _checks.non_negative(fn, "eps", eps)

    def update_fn(updates, state, params=None):
        del params
        norm = _tree.global_norm(updates)
        factor = _numerics.as_dtype(scale_factor, norm.dtype) / (
            norm + _numerics.as_dtype(eps, norm.dtype)
        )

        def leaf(u):
            cd = _numerics.compute_dtype(u.dtype)
            return (u.astype(cd) * factor.astype(cd)).astype(u.dtype)

        return jax.tree.map(leaf, updates), state

    return _stateless(update_fn)
