"""Parameter groups: `masked`, `partition`, `freeze`, `set_to_zero`, against per-leaf references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference

STEPS = 12


@jax.tree_util.register_pytree_node_class
class Pair:
    """A custom pytree node with two children."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def tree_flatten(self):
        return (self.first, self.second), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux
        return cls(*children)


@jax.tree_util.register_pytree_node_class
class CallableMask:
    """A callable pytree of bools (like an Equinox module): a mask that must never be called."""

    def __init__(self, dense, blocks):
        self.dense, self.blocks = dense, blocks

    def __call__(self, *args):
        raise AssertionError("a pytree given as `mask` was called")

    def tree_flatten(self):
        return (self.dense, self.blocks), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux
        return cls(*children)


def make_params(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    arr = lambda *shape: jnp.asarray(rng.standard_normal(shape), dtype)
    return {
        "dense": {"w": arr(4, 3), "b": arr(3)},
        "blocks": [(arr(2, 2), arr(2)), Pair(arr(3, 2), arr())],
        "none": None,
        "empty": {},
    }


def make_grads(params, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
        for _ in range(steps)
    ]


def run(tx, params, grads, mode="jit"):
    """Parameters after each step, as a list of lists of float64 leaves."""

    def step(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        params = gradtx.apply_updates(params, updates)
        return (params, state), params

    state = tx.init(params)
    if mode == "scan":
        stacked = jax.tree.map(lambda *x: jnp.stack(x), *grads)
        _, history = jax.lax.scan(step, (params, state), stacked)
        leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(history)]
        return [[x[t] for x in leaves] for t in range(len(grads))]
    step = jax.jit(step) if mode == "jit" else step
    out = []
    for g in grads:
        (params, state), _ = step((params, state), g)
        out.append([np.asarray(x, np.float64) for x in jax.tree.leaves(params)])
    return out


def leaf_grads(grads, i):
    return [np.asarray(jax.tree.leaves(g)[i], np.float64) for g in grads]


def check_leaf(got, i, want, **tol):
    for t, w in enumerate(want):
        np.testing.assert_allclose(
            got[t][i],
            w,
            rtol=tol.get("rtol", 1e-5),
            atol=tol.get("atol", 1e-6),
            err_msg=f"leaf {i}, step {t}",
        )


PATHS = ["blocks/0/0", "blocks/0/1", "blocks/1/0", "blocks/1/1", "dense/b", "dense/w"]
IS_WEIGHT = [True, False, True, False, False, True]  # ndim >= 2, in tree order


def adam_or_sgd(path, leaf):
    return "adam" if leaf.ndim > 1 else "sgd"


def expected_adam_sgd(params, grads):
    theta0 = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    return [
        reference.adam(theta0[i], leaf_grads(grads, i), 1e-2)
        if IS_WEIGHT[i]
        else reference.sgd(theta0[i], leaf_grads(grads, i), 0.1, momentum=0.9)
        for i in range(len(theta0))
    ]


@pytest.mark.parametrize("mode", ["jit", "scan"])  # eager == jit: tests/test_contract.py
def test_partition_adam_for_weights_sgd_for_the_rest(mode):
    params = make_params()
    grads = make_grads(params)
    tx = gradtx.partition(
        {"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1, momentum=0.9)},
        gradtx.labels_by_path(adam_or_sgd),
    )
    got = run(tx, params, grads, mode)
    for i, want in enumerate(expected_adam_sgd(params, grads)):
        check_leaf(got, i, want)


def test_labels_by_path_gives_slash_joined_paths():
    seen = []

    def label(path, leaf):
        seen.append((path, leaf.shape))
        return "a"

    gradtx.labels_by_path(label)(make_params())
    assert seen == [
        ("blocks/0/0", (2, 2)),
        ("blocks/0/1", (2,)),
        ("blocks/1/0", (3, 2)),
        ("blocks/1/1", ()),
        ("dense/b", (3,)),
        ("dense/w", (4, 3)),
    ]


@pytest.mark.parametrize(
    "labels",
    [
        # one label per leaf, a full tree
        {
            "dense": {"w": "adam", "b": "sgd"},
            "blocks": [("adam", "sgd"), Pair("adam", "sgd")],
            "none": None,
            "empty": {},
        },
        # prefixes: one label for a subtree; a label standing for the None subtree
        {
            "dense": {"w": "adam", "b": "sgd"},
            "blocks": [("adam", "sgd"), "mixed"],
            "none": "sgd",
            "empty": {},
        },
    ],
)
def test_partition_with_label_trees_and_prefixes(labels):
    params = make_params()
    grads = make_grads(params)
    mixed = gradtx.partition(
        {"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1, momentum=0.9)},
        gradtx.labels_by_path(adam_or_sgd),
    )
    tx = gradtx.partition(
        {"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1, momentum=0.9), "mixed": mixed}, labels
    )
    got = run(tx, params, grads)
    for i, want in enumerate(expected_adam_sgd(params, grads)):
        check_leaf(got, i, want)


def test_each_group_keeps_state_for_its_leaves_only():
    params = make_params()
    tx = gradtx.partition(
        {"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1, momentum=0.9)},
        gradtx.labels_by_path(adam_or_sgd),
    )
    state = tx.init(params)
    adam_state = state.inner_states["adam"].inner_state[0]
    assert [x.shape for x in jax.tree.leaves(adam_state.mu)] == [(2, 2), (3, 2), (4, 3)]
    assert adam_state.mu["dense"]["b"] == gradtx.MaskedNode()
    sgd_trace = state.inner_states["sgd"].inner_state[1].trace
    assert [x.shape for x in jax.tree.leaves(sgd_trace)] == [(2,), (), (3,)]
    # A label no leaf carries is allowed: its transformation sees an empty tree.
    unused = gradtx.partition({"a": gradtx.adam(1e-2), "b": gradtx.adam(1e-2)}, {"w": "a"})
    u, s = unused.update({"w": jnp.ones(2)}, unused.init({"w": jnp.ones(2)}))
    assert jax.tree.leaves(s.inner_states["b"].inner_state[0].mu) == []
    np.testing.assert_allclose(u["w"], [-1e-2, -1e-2], rtol=1e-6)


def test_empty_and_none_trees():
    for params in [{}, None, {"a": None, "b": []}]:
        for tx in [
            gradtx.partition({"x": gradtx.adam(1e-2)}, lambda p: jax.tree.map(lambda _: "x", p)),
            gradtx.masked(gradtx.adam(1e-2), True),
            gradtx.freeze(True),
        ]:
            updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
            assert jax.tree.structure(updates) == jax.tree.structure(params)


def test_masked_with_prefix_mask_and_exact_pass_through():
    params = make_params()
    grads = make_grads(params)
    mask = {"dense": True, "blocks": [False, True], "none": None, "empty": {}}
    got = run(gradtx.masked(gradtx.adam(1e-2), mask), params, grads, "scan")
    theta0 = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    selected = [False, False, True, True, True, True]
    for i, theta in enumerate(theta0):
        g = leaf_grads(grads, i)
        if selected[i]:
            check_leaf(got, i, reference.adam(theta, g, 1e-2))
        else:  # the update is the gradient itself
            check_leaf(got, i, list(theta + np.cumsum(g, axis=0)))
    # Passed-through updates are returned bit for bit.
    tx = gradtx.masked(gradtx.adam(1e-2), mask)
    updates, _ = jax.jit(tx.update)(grads[0], tx.init(params), params)
    np.testing.assert_array_equal(updates["blocks"][0][0], grads[0]["blocks"][0][0])


def test_mask_all_true_equals_inner_and_all_false_equals_identity():
    params = make_params()
    grads = make_grads(params)
    inner = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-2, weight_decay=0.1))
    want = run(inner, params, grads)
    for mask in [True, jax.tree.map(lambda _: True, params)]:
        got = run(gradtx.masked(inner, mask), params, grads)
        for a, b in zip(got, want, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    for mask in [False, jax.tree.map(lambda _: False, params)]:
        tx = gradtx.masked(inner, mask)
        state = tx.init(params)
        assert jax.tree.leaves(state.inner_state[1][0].mu) == []  # no state for masked leaves
        for g in grads[:3]:
            updates, state = jax.jit(tx.update)(g, state, params)
            for u, x in zip(jax.tree.leaves(updates), jax.tree.leaves(g), strict=True):
                np.testing.assert_array_equal(u, x)


def test_mask_fn_and_callable_pytree_mask():
    params = make_params()
    grads = make_grads(params, steps=10)
    calls = []

    def mask_fn(p):
        calls.append(jax.tree.structure(p))
        return jax.tree.map(lambda x: x.ndim > 1, p)

    by_fn = run(gradtx.masked(gradtx.sgd(0.1), mask_fn=mask_fn), params, grads)
    assert calls and all(c == jax.tree.structure(params) for c in calls)
    by_tree = gradtx.masked(
        gradtx.sgd(0.1),
        CallableMask(dense={"w": True, "b": False}, blocks=[(True, False), Pair(True, False)]),
    )
    tree_params = {"dense": params["dense"], "blocks": params["blocks"]}
    tree_params = CallableMask(tree_params["dense"], tree_params["blocks"])
    state = by_tree.init(tree_params)
    updates, _ = by_tree.update(
        CallableMask(grads[0]["dense"], grads[0]["blocks"]), state, tree_params
    )
    np.testing.assert_allclose(
        updates.dense["w"], -0.1 * np.asarray(grads[0]["dense"]["w"]), rtol=1e-6
    )
    np.testing.assert_array_equal(updates.dense["b"], grads[0]["dense"]["b"])
    theta0 = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    for i, theta in enumerate(theta0):
        g = leaf_grads(grads, i)
        want = reference.sgd(theta, g, 0.1) if IS_WEIGHT[i] else list(theta + np.cumsum(g, axis=0))
        check_leaf(by_fn, i, want)


def test_set_to_zero_and_freeze():
    params = make_params(jnp.bfloat16)
    updates, state = gradtx.set_to_zero().update(params, gradtx.set_to_zero().init(params))
    assert state == gradtx.EmptyState()
    for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.bfloat16 and not np.any(np.asarray(u, np.float64))

    params = make_params()
    grads = make_grads(params)
    frozen = {"dense": {"w": True, "b": False}, "blocks": True, "none": None, "empty": {}}
    for freezer in [gradtx.freeze(frozen), gradtx.freeze(mask_fn=lambda p: {**frozen})]:
        got = run(gradtx.chain(gradtx.sgd(0.1), freezer), params, grads)
        theta0 = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
        for i, theta in enumerate(theta0):
            if PATHS[i] == "dense/b":
                check_leaf(got, i, reference.sgd(theta, leaf_grads(grads, i), 0.1))
            else:
                for t in range(STEPS):
                    np.testing.assert_array_equal(got[t][i], theta)


def scale_by_value():
    """An extra-args transformation: multiplies the updates by the `value=` keyword."""

    def update_fn(updates, state, params=None, *, value):
        return jax.tree.map(lambda u: u * value.astype(u.dtype), updates), state

    return gradtx.GradientTransformationExtraArgs(lambda p: gradtx.EmptyState(), update_fn)


def test_extra_args_reach_only_members_that_take_them():
    params = {"a": jnp.ones(2), "b": jnp.ones(2)}
    tx = gradtx.partition({"x": scale_by_value(), "y": gradtx.sgd(1.0)}, {"a": "x", "b": "y"})
    updates, _ = tx.update(params, tx.init(params), params, value=jnp.float32(3.0))
    np.testing.assert_array_equal(updates["a"], [3.0, 3.0])
    np.testing.assert_array_equal(updates["b"], [-1.0, -1.0])


def test_nested_wrappers_masked_multi_steps_inside_partition():
    """`partition` > `masked` > `multi_steps`, and `apply_if_finite` in another group."""
    params = make_params()
    grads = make_grads(params)
    slow = gradtx.masked(
        gradtx.multi_steps(gradtx.sgd(0.1), 2),
        # A mask for the full params, deeper than the MaskedNode this group sees at `blocks`.
        {
            "dense": {"w": True, "b": False},
            "blocks": [(True, False), True],
            "none": None,
            "empty": {},
        },
    )
    fast = gradtx.apply_if_finite(gradtx.adam(1e-2), 1)
    tx = gradtx.partition(
        {"slow": slow, "fast": fast}, {"dense": "slow", "blocks": "fast", "none": None, "empty": {}}
    )
    for mode in ["jit", "scan"]:
        got = run(tx, params, grads, mode)
        theta0 = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
        for i, theta in enumerate(theta0):
            g = leaf_grads(grads, i)
            if PATHS[i] == "dense/w":
                means = [(g[t] + g[t + 1]) / 2 for t in range(0, STEPS, 2)]
                real = reference.sgd(theta, means, 0.1)
                want = [[theta, *real][(t + 1) // 2] for t in range(STEPS)]  # real steps: t odd
                check_leaf(got, i, want)
            elif PATHS[i] == "dense/b":
                check_leaf(got, i, list(theta + np.cumsum(g, axis=0)))
            else:
                check_leaf(got, i, reference.adam(theta, g, 1e-2))


def test_partition_keeps_bf16():
    params = make_params(jnp.bfloat16)
    tx = gradtx.partition(
        {"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1, momentum=0.9)},
        gradtx.labels_by_path(adam_or_sgd),
    )
    updates, state = jax.jit(tx.update)(params, tx.init(params), params)
    assert {u.dtype for u in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}
    moments = [x for x in jax.tree.leaves(state) if x.dtype != jnp.int32]
    assert len(moments) == 9 and {x.dtype for x in moments} == {jnp.dtype(jnp.bfloat16)}


# ---- errors ------------------------------------------------------------------------------------


def test_missing_label_names_the_label_and_the_leaf():
    params = make_params()
    tx = gradtx.partition(
        {"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1)},
        {"dense": {"w": "adam", "b": "bias"}, "blocks": "sgd", "none": None, "empty": {}},
    )
    with pytest.raises(ValueError) as info:
        tx.init(params)
    assert str(info.value) == (
        "partition: param_labels['dense']['b'] is 'bias', which is not a key of `transforms` ('adam', 'sgd'). Add a transformation for 'bias' or change the label."
    )


@pytest.mark.parametrize(
    ("labels", "detail"),
    [
        (
            {"dense": "adam", "blocks": ["adam"], "none": None, "empty": {}},
            "param_labels['blocks'] is a list with 1 entries where params['blocks'] is a list with 2 entries",
        ),
        (
            {"dense": "adam", "blocks": "adam", "empty": {}},
            "params['none'] has no counterpart in `param_labels`",
        ),
        (
            {
                "dense": {"w": "adam", "b": "adam", "c": "adam"},
                "blocks": "adam",
                "none": None,
                "empty": {},
            },
            "param_labels['dense']['c'] has no counterpart in the params",
        ),
        (
            {"dense": "adam", "blocks": "adam", "none": "adam", "empty": {"x": "adam"}},
            "param_labels['empty']['x'] has no counterpart in the params",
        ),
        (
            {"dense": "adam", "blocks": "adam", "none": None, "empty": None},
            "param_labels['empty'] is None where params['empty'] is a dict with keys []",
        ),
    ],
)
def test_label_structure_errors_name_the_path(labels, detail):
    tx = gradtx.partition({"adam": gradtx.adam(1e-2)}, labels)
    with pytest.raises(ValueError) as info:
        tx.init(make_params())
    assert str(info.value) == (
        f"partition: `param_labels` must have the tree structure of the params or of a prefix of it, but {detail}. "
        "Give one label per parameter leaf or per subtree, or a function of the params returning such a tree (see `gradtx.labels_by_path`)."
    )


def test_mask_structure_error_names_the_path():
    tx = gradtx.masked(
        gradtx.sgd(0.1), {"dense": {"w": True}, "blocks": True, "none": None, "empty": {}}
    )
    with pytest.raises(ValueError) as info:
        tx.init(make_params())
    assert str(info.value) == (
        "masked: `mask` must have the tree structure of the params or of a prefix of it, but params['dense']['b'] has no counterpart in `mask`. "
        "Give one bool per parameter leaf or per subtree (e.g. `jax.tree.map(lambda p: p.ndim > 1, params)`), or pass a function of the params as `mask_fn=`."
    )


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: gradtx.masked(gradtx.sgd(0.1), lambda p: p),
            TypeError,
            "masked: `mask` is a function; pass it as `mask_fn=` instead. A pytree given as `mask` is never called, so callable pytrees (e.g. Equinox modules) can be masks.",
        ),
        (
            lambda: gradtx.masked(gradtx.sgd(0.1)),
            TypeError,
            "masked: give exactly one of `mask` (a pytree of bools shaped like the params or a prefix of it) and `mask_fn` (a function of the params returning one).",
        ),
        (
            lambda: gradtx.freeze(True, mask_fn=lambda p: True),
            TypeError,
            "freeze: give exactly one of `mask` (a pytree of bools shaped like the params or a prefix of it) and `mask_fn` (a function of the params returning one).",
        ),
        (
            lambda: gradtx.masked(gradtx.sgd(0.1), mask_fn=True),
            TypeError,
            "masked: `mask_fn` must be a function of the params, got True.",
        ),
        (
            lambda: gradtx.masked(lambda u: u, True),
            TypeError,
            "masked: `inner` must be a GradientTransformation (an `(init, update)` pair such as `gradtx.adam(1e-3)`), got function.",
        ),
        (
            lambda: gradtx.partition([gradtx.sgd(0.1)], "a"),
            TypeError,
            "partition: `transforms` must be a dict from label to transformation, got list.",
        ),
        (
            lambda: gradtx.partition({"a": None}, "a"),
            TypeError,
            "partition: `transforms['a']` must be a GradientTransformation (an `(init, update)` pair such as `gradtx.adam(1e-3)`), got NoneType.",
        ),
        (
            lambda: gradtx.labels_by_path("a"),
            TypeError,
            "labels_by_path: `label_fn` must be a function `(path, leaf) -> label`, got 'a'.",
        ),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message


def test_mask_leaves_must_be_static_bools():
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError) as info:
        gradtx.masked(gradtx.sgd(0.1), {"w": "yes"}).init(params)
    assert str(info.value) == (
        "masked: mask['w'] must be True or False, got 'yes'. Give one bool per parameter leaf or per subtree (e.g. `jax.tree.map(lambda p: p.ndim > 1, params)`), or pass a function of the params as `mask_fn=`."
    )
    tx = gradtx.masked(gradtx.sgd(0.1), mask_fn=lambda p: {"w": jnp.all(p["w"] > 0)})
    with pytest.raises(TypeError) as info:
        jax.jit(tx.update)(params, tx.init({"w": np.ones(2)}), params)
    assert str(info.value) == (
        "masked: mask['w'] is a traced value; masks must be known when the step is traced. Build the mask from shapes and names (Python bools), not from array values."
    )
    # Concrete NumPy and JAX booleans are accepted.
    for flag in [np.bool_(True), jnp.asarray(True)]:
        tx = gradtx.masked(gradtx.sgd(0.1), {"w": flag})
        updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
        np.testing.assert_allclose(updates["w"], [-0.1, -0.1], rtol=1e-6)


def test_wrong_state_is_named():
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError) as info:
        gradtx.freeze(True).update(params, gradtx.EmptyState())
    assert str(info.value) == (
        "freeze: expected the state built by this transformation's `init` (a MaskedState), got EmptyState. Call `init` on this optimizer."
    )
    tx = gradtx.partition({"a": gradtx.sgd(0.1)}, "a")
    with pytest.raises(ValueError) as info:
        tx.update(params, gradtx.partition({"b": gradtx.sgd(0.1)}, "b").init(params))
    assert str(info.value) == (
        "partition: expected the state built by this partition's `init` (a PartitionState with labels 'a'). Call `init` on this optimizer."
    )
    tx = gradtx.masked(gradtx.adam(1e-2), {"w": True})
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.ones(3)}, tx.init(params))
    assert str(info.value) == (
        "scale_by_adam: updates['w'] has shape (3,), but state.mu['w'] has shape (2,). The optimizer state was built for other parameters: call `init` with the parameters you are updating."
    )


def test_multi_transform_is_partition():
    assert gradtx.multi_transform is gradtx.partition
