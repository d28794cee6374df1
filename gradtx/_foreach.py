"""Running a transformation on a few flat buffers instead of many small leaves.

An optimizer step is element-wise work over every parameter. With thousands of small leaves the
cost is per-leaf overhead, not arithmetic, and XLA's compile time grows with the number of
leaves. `foreach` packs every leaf up to `max_leaf_size` elements into one flat vector per dtype,
runs the inner transformation on those vectors (its state is kept packed), and unpacks the
updates. Large leaves are passed through as they are, so wrapping costs nothing where it does
not help.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _checks
from ._base import GradientTransformation, GradientTransformationExtraArgs

DEFAULT_MAX_LEAF_SIZE = 1 << 16
# Leaves per packed buffer. XLA's compile time grows faster than linearly with the number of
# slices taken from one buffer (500 slices of one buffer compile 14x slower than 10 buffers of
# 50 slices, XLA CPU, jax 0.10), so the small leaves are packed in buffers of at most this many.
LEAVES_PER_BUFFER = 32


class Packed(NamedTuple):
    """What the inner transformation of `foreach` sees.

    Attributes:
        groups: a dict from dtype name to one flat vector holding every small leaf of that dtype.
        leaves: the leaves larger than `max_leaf_size`, unchanged, in tree order.
    """

    groups: dict[str, jax.Array]
    leaves: tuple[Any, ...]


def reject_packed(fn: str, tree: Any) -> None:
    """Raises if `tree` is a `Packed` tree: masks and labels cannot see leaves inside `foreach`."""
    if isinstance(tree, Packed):
        raise TypeError(
            f"{fn}: inside `foreach` the parameters are packed into flat buffers, so a mask or "
            f"labels cannot select leaves there. Put `{fn}` (or the masked weight decay) outside "
            f"`foreach`, e.g. `partition({{...: foreach(chain(...))}}, labels)`."
        )


class _Layout(NamedTuple):
    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    groups: tuple[tuple[str, tuple[int, ...]], ...]  # (dtype name, leaf indices)
    singles: tuple[int, ...]


def _layout(tree: Any, max_leaf_size: int | None) -> _Layout:
    leaves, treedef = jax.tree.flatten(tree)
    groups: dict[str, list[int]] = {}
    singles = []
    for i, x in enumerate(leaves):
        if max_leaf_size is None or x.size <= max_leaf_size:
            groups.setdefault(jnp.dtype(x.dtype).name, []).append(i)
        else:
            singles.append(i)
    chunks = tuple(
        (f"{name}_{k // LEAVES_PER_BUFFER}", tuple(idx[k : k + LEAVES_PER_BUFFER]))
        for name, idx in sorted(groups.items())
        for k in range(0, len(idx), LEAVES_PER_BUFFER)
    )
    return _Layout(treedef, tuple(tuple(x.shape) for x in leaves), chunks, tuple(singles))


def _pack(fn: str, name: str, tree: Any, layout: _Layout) -> Packed:
    leaves = layout.treedef.flatten_up_to(tree)
    groups = {}
    for key, idx in layout.groups:
        dtype = key.rsplit("_", 1)[0]
        found = {jnp.dtype(leaves[i].dtype).name for i in idx}
        if found != {dtype}:
            raise TypeError(
                f"{fn}: the leaves of `{name}` packed with the {dtype} updates have dtypes "
                f"{sorted(found)}; give `{name}` the same dtype per leaf as the updates."
            )
        groups[key] = jnp.concatenate([jnp.ravel(leaves[i]) for i in idx])
    return Packed(groups=groups, leaves=tuple(leaves[i] for i in layout.singles))


def _unpack(packed: Packed, layout: _Layout) -> Any:
    leaves: list[Any] = [None] * len(layout.shapes)
    for key, idx in layout.groups:
        flat, offset = packed.groups[key], 0
        for i in idx:
            size = 1
            for d in layout.shapes[i]:
                size *= d
            leaves[i] = flat[offset : offset + size].reshape(layout.shapes[i])
            offset += size
    for i, leaf in zip(layout.singles, packed.leaves, strict=True):
        leaves[i] = leaf
    return layout.treedef.unflatten(leaves)


def foreach(
    inner: GradientTransformation, *, max_leaf_size: int | None = DEFAULT_MAX_LEAF_SIZE
) -> GradientTransformationExtraArgs:
    """Runs `inner` on flat per-dtype buffers of all leaves with at most `max_leaf_size` elements.

    The updates that come out equal those of `inner` run leaf by leaf: bit for bit for
    element-wise transformations, and to float32 round-off where a sum over leaves is involved
    (`clip_by_global_norm` adds the leaves in another order). The state of `inner` is kept in
    packed form (`Packed(groups={dtype: vector}, leaves=(large leaves...))`).

    Use it around element-wise chains (clipping, Adam, Lion, SGD, weight decay...) when a model
    has many small leaves: per-step overhead and compile time then no longer grow with the
    number of leaves. Transformations that depend on a leaf's shape or path (a weight-decay mask
    given as a tree, factored or matrix-shaped optimizers) belong outside `foreach`, or inside
    it only for leaves above `max_leaf_size`: they would see flat buffers, not the parameters'
    shapes. Masks, labels, `masked` and `partition` raise a `TypeError` inside `foreach`.

    Args:
        inner: the transformation to run on the packed tree.
        max_leaf_size: leaves with more elements are passed through unpacked; None packs all.

    Example::

        tx = gradtx.foreach(gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-3)))
    """
    fn = "foreach"
    _checks.transformation(fn, "inner", inner)
    if max_leaf_size is not None:
        _checks.non_negative_int(fn, "max_leaf_size", max_leaf_size)

    def init_fn(params):
        return inner.init(_pack(fn, "params", params, _layout(params, max_leaf_size)))

    def update_fn(updates, state, params=None, **extra_args):
        layout = _layout(updates, max_leaf_size)
        packed_params = None
        if params is not None:
            _checks.trees_match(fn, "params", params, "updates", updates)
            packed_params = _pack(fn, "params", params, layout)
        packed = _pack(fn, "updates", updates, layout)
        if isinstance(inner, GradientTransformationExtraArgs):
            new, state = inner.update(packed, state, packed_params, **extra_args)
        else:
            new, state = inner.update(packed, state, packed_params)
        return _unpack(new, layout), state

    return GradientTransformationExtraArgs(init_fn, update_fn)


def flatten(inner: GradientTransformation) -> GradientTransformationExtraArgs:
    """Runs `inner` on one flat vector per dtype holding every leaf: `foreach` with no size limit.

    See `foreach` for what this is equal to and when to use it.
    """
    return foreach(inner, max_leaf_size=None)
