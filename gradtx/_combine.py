"""Composing transformations."""

from __future__ import annotations

from . import _checks
from ._base import GradientTransformation, GradientTransformationExtraArgs


def _run(transforms, updates, states, params, extra_args):
    new_states = []
    for tx, state in zip(transforms, states, strict=True):
        if isinstance(tx, GradientTransformationExtraArgs):
            updates, state = tx.update(updates, state, params, **extra_args)
        else:
            updates, state = tx.update(updates, state, params)
        new_states.append(state)
    return updates, new_states


def _check_state_length(fn, state, n):
    if not isinstance(state, tuple | dict) or len(state) != n:
        raise ValueError(
            f"{fn}: expected the state built by this chain's `init` ({n} entries), got "
            f"{type(state).__name__}"
            + (f" with {len(state)} entries" if isinstance(state, tuple | dict) else "")
            + ". Call `init` on this optimizer to build its state."
        )


def chain(*transforms: GradientTransformation) -> GradientTransformationExtraArgs:
    """Applies `transforms` one after the other; the state is the tuple of their states.

    `chain()` is the identity. Keyword arguments given to `update` (such as `value=`) are passed
    to the members that accept them (`GradientTransformationExtraArgs`) and to no other.

    Example::

        tx = gradtx.chain(
            gradtx.clip_by_global_norm(1.0),
            gradtx.scale_by_adam(),
            gradtx.add_decayed_weights(1e-2),
            gradtx.scale_by_learning_rate(schedule),
        )
    """
    for i, tx in enumerate(transforms):
        _checks.transformation("chain", f"transforms[{i}]", tx)

    def init_fn(params):
        return tuple(tx.init(params) for tx in transforms)

    def update_fn(updates, state, params=None, **extra_args):
        _check_state_length("chain", state, len(transforms))
        updates, new_states = _run(transforms, updates, state, params, extra_args)
        return updates, tuple(new_states)

    return GradientTransformationExtraArgs(init_fn, update_fn)


def named_chain(*transforms: tuple[str, GradientTransformation]) -> GradientTransformationExtraArgs:
    """Like `chain`, with a state that is a dict from each given name to that member's state.

    Example::

        tx = gradtx.named_chain(("clip", gradtx.clip_by_global_norm(1.0)),
                                ("adam", gradtx.adam(1e-3)))
        state = tx.init(params)
        state["adam"]   # the Adam state
    """
    names = []
    for i, item in enumerate(transforms):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(
                f"named_chain: argument {i} must be a `(name, transformation)` pair, got {item!r}."
            )
        _checks.transformation("named_chain", f"transforms[{i}][1]", item[1])
        names.append(item[0])
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"named_chain: names must be unique, {duplicates} appear more than once.")
    members = [tx for _, tx in transforms]

    def init_fn(params):
        return {name: tx.init(params) for name, tx in transforms}

    def update_fn(updates, state, params=None, **extra_args):
        _check_state_length("named_chain", state, len(members))
        states = [state[name] for name in names]
        updates, new_states = _run(members, updates, states, params, extra_args)
        return updates, dict(zip(names, new_states, strict=True))

    return GradientTransformationExtraArgs(init_fn, update_fn)
