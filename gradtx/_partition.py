"""Parameter groups: a transformation for some leaves only, or one per group of leaves.

`masked(inner, mask)` runs `inner` on the leaves where `mask` is True and passes the others
through; `partition({label: tx, ...}, param_labels)` runs each `tx` on the leaves with its label.
The inner transformation sees a tree in which every other leaf is replaced by a `MaskedNode`, a
container with no children: it keeps no state for those leaves and cannot touch them.

Masks and labels may be prefixes of the params tree: one bool or label then stands for a whole
subtree (`{"encoder": False, "decoder": True}`). They must be known when the step is traced
(Python bools and labels, not traced arrays).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from ._base import EmptyState, GradientTransformation, GradientTransformationExtraArgs, Params
from ._foreach import reject_packed

KeyPath = tuple[Any, ...]

_MASK_HINT = (
    "Give one bool per parameter leaf or per subtree (e.g. "
    "`jax.tree.map(lambda p: p.ndim > 1, params)`), or pass a function of the params as "
    "`mask_fn=`."
)
_LABELS_HINT = (
    "Give one label per parameter leaf or per subtree, or a function of the params returning "
    "such a tree (see `gradtx.labels_by_path`)."
)


class MaskedNode(NamedTuple):
    """Stands in for a masked-out leaf or subtree: a container with no children.

    `jax.tree.map` and every gradtx transformation skip it, so an inner transformation keeps no
    state for the leaves it replaces.
    """


class MaskedState(NamedTuple):
    """State of `masked`: the inner state, built for the unmasked leaves only."""

    inner_state: Any


class PartitionState(NamedTuple):
    """State of `partition`: a dict from each label to that group's `MaskedState`."""

    inner_states: dict[Hashable, MaskedState]


# ---- prefix trees ------------------------------------------------------------------------------


def _level(x: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    """`x`'s own node (as a one-level treedef) and its `(key, child)` pairs; none for a leaf."""
    if _is_leaf(x):
        return jax.tree.structure(x), []
    pairs, treedef = jax.tree_util.tree_flatten_with_path(x, is_leaf=lambda y: y is not x)
    return treedef, [(path[0], child) for path, child in pairs]


def _is_leaf(x: Any) -> bool:
    treedef = jax.tree.structure(x)
    return treedef.num_leaves == 1 and treedef.num_nodes == 1


def _describe(x: Any) -> str:
    if x is None:
        return "None"
    if _is_leaf(x):
        shape = getattr(x, "shape", None)
        return f"a leaf of shape {tuple(shape)}" if shape is not None else f"the leaf {x!r}"
    if isinstance(x, dict):
        return f"a dict with keys {sorted(x, key=repr)}"
    children = _level(x)[1]
    return f"a {type(x).__name__} with {len(children)} entries"


def _difference(prefix_name: str, prefix: Any, tree: Any, path: KeyPath) -> str:
    keystr = jax.tree_util.keystr
    if isinstance(prefix, dict) and isinstance(tree, dict):
        missing = [k for k in tree if k not in prefix]
        if missing:
            where = keystr((*path, jax.tree_util.DictKey(missing[0])))
            return f"params{where} has no counterpart in `{prefix_name}`"
        extra = [k for k in prefix if k not in tree]
        if extra:
            where = keystr((*path, jax.tree_util.DictKey(extra[0])))
            return f"{prefix_name}{where} has no counterpart in the params"
    where = keystr(path)
    return f"{prefix_name}{where} is {_describe(prefix)} where params{where} is {_describe(tree)}"


def _map_prefix(fn, prefix_name, f, prefix, *trees, path: KeyPath = ()):
    """Calls `f(path, prefix_leaf, *subtrees)` at each leaf of `prefix` (a prefix of `trees`).

    Where `trees[0]` holds a `MaskedNode` (a part an outer wrapper removed) and `prefix` holds
    a subtree, the result is that part of `trees[-1]`. A mismatch raises naming its path.
    """
    if not path:  # fast path: `prefix` is a plain prefix of every tree
        prefix_leaves, prefix_def = jax.tree_util.tree_flatten_with_path(prefix)
        try:
            subtrees = [prefix_def.flatten_up_to(t) for t in trees]
        except (ValueError, TypeError):
            pass
        else:
            results = [
                f(p, m, *subs) for (p, m), *subs in zip(prefix_leaves, *subtrees, strict=True)
            ]
            return prefix_def.unflatten(results)
    if _is_leaf(prefix):
        return f(path, prefix, *trees)
    if isinstance(trees[0], MaskedNode):
        return trees[-1]
    prefix_def, prefix_children = _level(prefix)
    levels = [_level(t) for t in trees]
    for tree, (tree_def, _) in zip(trees, levels, strict=True):
        if tree_def != prefix_def:
            raise ValueError(
                f"{fn}: `{prefix_name}` must have the tree structure of the params or of a prefix "
                f"of it, but {_difference(prefix_name, prefix, tree, path)}. "
                + (_LABELS_HINT if prefix_name == "param_labels" else _MASK_HINT)
            )
    results = []
    for i, (key, child) in enumerate(prefix_children):
        subtrees = [children[i][1] for _, children in levels]
        results.append(_map_prefix(fn, prefix_name, f, child, *subtrees, path=(*path, key)))
    return prefix_def.unflatten(results)


def _static_bool(fn: str, path: KeyPath, value: Any) -> bool:
    where = f"mask{jax.tree_util.keystr(path)}"
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{fn}: {where} is a traced value; masks must be known when the step is traced. "
            f"Build the mask from shapes and names (Python bools), not from array values."
        )
    if isinstance(value, bool | np.bool_) or (
        np.shape(value) == () and getattr(value, "dtype", None) == np.dtype(bool)
    ):
        return bool(value)
    raise TypeError(f"{fn}: {where} must be True or False, got {value!r}. {_MASK_HINT}")


def _hide(fn: str, mask: Any, tree: Any) -> Any:
    """`tree` with every part where `mask` is False replaced by a `MaskedNode`."""

    def leaf(path, m, subtree):
        return subtree if _static_bool(fn, path, m) else MaskedNode()

    return _map_prefix(fn, "mask", leaf, mask, tree)


def _merge(fn: str, mask: Any, new: Any, old: Any) -> Any:
    """`new` where `mask` is True, `old` elsewhere."""
    return _map_prefix(fn, "mask", lambda _, m, n, o: n if m else o, mask, new, old)


def _is_function(value: Any) -> bool:
    """True for a callable that is a single pytree leaf (a function, not a callable module)."""
    return callable(value) and _is_leaf(value)


# ---- masked ------------------------------------------------------------------------------------


def _run_masked(fn, inner, mask, updates, state, params, extra_args):
    hidden_params = None if params is None else _hide(fn, mask, params)
    kwargs = extra_args if isinstance(inner, GradientTransformationExtraArgs) else {}
    new, inner_state = inner.update(_hide(fn, mask, updates), state, hidden_params, **kwargs)
    return _merge(fn, mask, new, updates), inner_state


def _masked(fn, inner, mask, mask_fn) -> GradientTransformationExtraArgs:
    _checks.transformation(fn, "inner", inner)
    if (mask is None) == (mask_fn is None):
        raise TypeError(
            f"{fn}: give exactly one of `mask` (a pytree of bools shaped like the params or a "
            f"prefix of it) and `mask_fn` (a function of the params returning one)."
        )
    if mask is not None and _is_function(mask):
        raise TypeError(
            f"{fn}: `mask` is a function; pass it as `mask_fn=` instead. A pytree given as "
            f"`mask` is never called, so callable pytrees (e.g. Equinox modules) can be masks."
        )
    if mask_fn is not None and not callable(mask_fn):
        raise TypeError(f"{fn}: `mask_fn` must be a function of the params, got {mask_fn!r}.")

    def resolve(tree):
        reject_packed(fn, tree)
        return mask if mask_fn is None else mask_fn(tree)

    def init_fn(params):
        return MaskedState(inner_state=inner.init(_hide(fn, resolve(params), params)))

    def update_fn(updates, state, params=None, **extra_args):
        if not isinstance(state, MaskedState):
            raise ValueError(
                f"{fn}: expected the state built by this transformation's `init` (a "
                f"MaskedState), got {type(state).__name__}. Call `init` on this optimizer."
            )
        tree_mask = resolve(updates if params is None else params)
        new, inner_state = _run_masked(
            fn, inner, tree_mask, updates, state.inner_state, params, extra_args
        )
        return new, MaskedState(inner_state=inner_state)

    return GradientTransformationExtraArgs(init_fn, update_fn)


def masked(
    inner: GradientTransformation,
    mask: Any = None,
    *,
    mask_fn: Callable[[Params], Any] | None = None,
) -> GradientTransformationExtraArgs:
    """Runs `inner` on the leaves where the mask is True; the other updates pass unchanged.

    Update rule::

        u_t[leaf] = inner(g_t restricted to the True leaves)[leaf]    where mask[leaf]
        u_t[leaf] = g_t[leaf]                                         elsewhere

    `inner` sees the updates (and params) with every False leaf replaced by a `MaskedNode`, so
    its state holds nothing for them: a norm it computes is over the True leaves only.

    Args:
        inner: the transformation to apply to the selected leaves.
        mask: a pytree of bools shaped like the params, or a prefix of it (one bool for a whole
            subtree). It is never called, even if it is a callable pytree (an Equinox module).
        mask_fn: instead of `mask`, a function returning the mask; `init` calls it with the
            params, `update` with the params when given, else with the updates.

    Example::

        decay = gradtx.masked(gradtx.add_decayed_weights(1e-2),
                              mask_fn=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
    """
    return _masked("masked", inner, mask, mask_fn)


def set_to_zero() -> GradientTransformation:
    """Replaces every update by zeros of its shape and dtype; keeps no state.

    Update rule::

        u_t = 0
    """

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(jnp.zeros_like, updates), state

    return GradientTransformation(init_fn, update_fn)


def freeze(
    mask: Any = None, *, mask_fn: Callable[[Params], Any] | None = None
) -> GradientTransformationExtraArgs:
    """Zeroes the updates of the frozen leaves (mask True) and passes the others unchanged.

    Update rule::

        u_t[leaf] = 0           where mask[leaf] (frozen)
        u_t[leaf] = g_t[leaf]   elsewhere

    This is `masked(set_to_zero(), mask)`. Put it last in a chain (after the learning rate) so
    that nothing is added to the frozen leaves; placed first, a later weight decay would still
    move them. `mask` and `mask_fn` are as in `masked`.
    """
    return _masked("freeze", set_to_zero(), mask, mask_fn)


# ---- partition ---------------------------------------------------------------------------------


def labels_by_path(
    label_fn: Callable[[str, Any], Hashable],
) -> Callable[[Params], Any]:
    """A `param_labels` function for `partition` that labels each leaf from its path.

    `label_fn(path, leaf)` receives the leaf's path as a string of keys joined by "/"
    (`"dense/w"`, `"blocks/0/1"`) and the leaf itself, and returns its label.

    Example::

        labels = gradtx.labels_by_path(lambda path, p: "decay" if p.ndim > 1 else "no_decay")
    """
    if not callable(label_fn):
        raise TypeError(
            f"labels_by_path: `label_fn` must be a function `(path, leaf) -> label`, got "
            f"{label_fn!r}."
        )

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, leaf: label_fn(
                jax.tree_util.keystr(path, simple=True, separator="/"), leaf
            ),
            params,
        )

    return labels


def partition(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Any,
) -> GradientTransformationExtraArgs:
    """Applies a different transformation to each group of leaves, chosen by their labels.

    Update rule::

        u_t[leaf] = transforms[label[leaf]](g_t restricted to that label's leaves)[leaf]

    Each transformation sees only its own leaves (the others are `MaskedNode`s), so it keeps
    state only for them, and a global norm it computes is over its group.

    Args:
        transforms: a dict from label to transformation. A label that no leaf carries is
            allowed (its transformation sees an empty tree).
        param_labels: a pytree of labels shaped like the params or a prefix of it (one label
            for a whole subtree), or a plain function of the params returning one (for example
            from `labels_by_path`). A callable pytree (an Equinox module) is taken as a tree of
            labels, never called.

    Raises:
        ValueError: from `init` and `update` if a leaf's label has no transformation, naming
            the label and the leaf path.

    Example::

        tx = gradtx.partition(
            {"adam": gradtx.adam(1e-3), "sgd": gradtx.sgd(1e-2)},
            gradtx.labels_by_path(lambda path, p: "adam" if p.ndim > 1 else "sgd"),
        )
    """
    fn = "partition"
    if not isinstance(transforms, Mapping):
        raise TypeError(
            f"{fn}: `transforms` must be a dict from label to transformation, got "
            f"{type(transforms).__name__}."
        )
    for label, tx in transforms.items():
        _checks.transformation(fn, f"transforms[{label!r}]", tx)
    groups = list(transforms)

    def resolve(tree):
        labels = param_labels(tree) if _is_function(param_labels) else param_labels

        def check(path, label, _):
            if label not in transforms:
                raise ValueError(
                    f"{fn}: param_labels{jax.tree_util.keystr(path)} is {label!r}, which is not "
                    f"a key of `transforms` ({', '.join(sorted(map(repr, groups)))}). Add a "
                    f"transformation for {label!r} or change the label."
                )

        _map_prefix(fn, "param_labels", check, labels, tree)
        return {g: jax.tree.map(lambda label, g=g: label == g, labels) for g in groups}

    def init_fn(params):
        reject_packed(fn, params)
        masks = resolve(params)
        return PartitionState(
            inner_states={
                g: MaskedState(transforms[g].init(_hide(fn, masks[g], params))) for g in groups
            }
        )

    def update_fn(updates, state, params=None, **extra_args):
        if not isinstance(state, PartitionState) or set(state.inner_states) != set(groups):
            raise ValueError(
                f"{fn}: expected the state built by this partition's `init` (a PartitionState "
                f"with labels {', '.join(sorted(map(repr, groups)))}). Call `init` on this "
                f"optimizer."
            )
        reject_packed(fn, updates)
        masks = resolve(updates if params is None else params)
        new_states = {}
        for g in groups:
            updates, inner_state = _run_masked(
                fn,
                transforms[g],
                masks[g],
                updates,
                state.inner_states[g].inner_state,
                params,
                extra_args,
            )
            new_states[g] = MaskedState(inner_state)
        return updates, PartitionState(inner_states=new_states)

    return GradientTransformationExtraArgs(init_fn, update_fn)


multi_transform = partition
"""The same function as `partition`, under its earlier Optax name."""
