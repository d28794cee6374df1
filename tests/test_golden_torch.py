"""gradtx against golden trajectories recorded from `torch.optim` (no torch needed here).

The data come from `tests/golden/make_golden.py` (regenerate with
`python tests/golden/make_golden.py`): float32 initial parameters and gradients, and the float64
parameter trajectory PyTorch produced from them. Here gradtx runs the same steps in float32,
one jitted update per step, and every step is compared.

Tolerances. The reference is computed in float64 from the same float32 inputs, so the whole
difference is gradtx's float32 rounding. Parameters stay O(1) (|x| <= 3.6 in these runs); each
step rounds them to float32 (half an ulp: 1.2e-7 for |x| in [2, 4)) and adds a few ulps of
relative error from the update arithmetic, which over 12-13 steps accumulates to a few 1e-7
absolute. Measured when this test was written: max |gradtx - torch| = 5.3e-7 (Adam),
4.8e-7 (SGD Nesterov), 2.7e-7 (SGD momentum), 1.9e-7 (AdamW, Adam+L2, clipped/scheduled AdamW).
We use rtol=1e-6 (~8 float32 ulps) plus atol=1e-6 for entries near 0, i.e. an allowance of
1e-6 + 1e-6 * |x| (>= 2x the worst measured error), still far below any algorithmic
difference: coupling the decay as an L2 term instead moves the AdamW trajectory by 3.1e-2
(`test_adamw_is_not_adam_with_l2`).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden" / "torch_golden.npz"
LEAVES = ("w", "b")

# See the module docstring.
RTOL = 1e-6
ATOL = 1e-6


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


def _case(golden, case):
    params0 = {k: golden[f"{case}/params0/{k}"] for k in LEAVES}
    grads = {k: golden[f"{case}/grads/{k}"] for k in LEAVES}
    traj = {k: golden[f"{case}/traj/{k}"] for k in LEAVES}
    prefix = f"{case}/hp/"
    hp = {k[len(prefix) :]: float(v) for k, v in golden.items() if k.startswith(prefix)}
    return params0, grads, traj, hp


def _run(tx, params0, grads, *, l2: float | None = None):
    """gradtx's float32 trajectory: params after each step, as float64 NumPy arrays.

    With `l2`, the gradient fed to `tx` is `g + l2 * theta` (an L2 term in the loss).
    """
    params = {k: jnp.asarray(v, jnp.float32) for k, v in params0.items()}
    state = tx.init(params)

    @jax.jit
    def step(params, state, g):
        if l2 is not None:
            g = jax.tree.map(lambda gi, p: gi + jnp.float32(l2) * p, g, params)
        updates, state = tx.update(g, state, params)
        return gradtx.apply_updates(params, updates), state

    steps = grads[LEAVES[0]].shape[0]
    out = {k: np.zeros((steps, *params0[k].shape), np.float64) for k in LEAVES}
    for t in range(steps):
        g = {k: jnp.asarray(grads[k][t], jnp.float32) for k in LEAVES}
        params, state = step(params, state, g)
        for k in LEAVES:
            assert params[k].dtype == jnp.float32
            out[k][t] = np.asarray(params[k], np.float64)
    return out


def _assert_traj_close(actual, expected, rtol=RTOL, atol=ATOL):
    for k in LEAVES:
        assert actual[k].shape == expected[k].shape
        for t in range(expected[k].shape[0]):
            np.testing.assert_allclose(
                actual[k][t], expected[k][t], rtol=rtol, atol=atol, err_msg=f"leaf {k}, step {t}"
            )


def _max_abs_diff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in LEAVES)


def test_golden_metadata(golden):
    assert str(golden["meta/torch_version"]).startswith("2.")
    assert set(golden["meta/cases"]) == {
        "sgd_momentum",
        "sgd_nesterov",
        "adam",
        "adam_l2",
        "adamw",
        "adamw_clip_sched",
    }
    for case in golden["meta/cases"]:
        assert golden[f"{case}/grads/w"].shape[0] >= 12
        assert golden[f"{case}/grads/w"].dtype == np.float32


@pytest.mark.parametrize("case,nesterov", [("sgd_momentum", False), ("sgd_nesterov", True)])
def test_sgd_momentum_matches_torch(golden, case, nesterov):
    # torch.optim.SGD(lr, momentum, nesterov) with a constant lr: torch's buffer b_t and
    # gradtx's v_t differ only by the constant factor lr (v_t = lr * b_t), so the steps agree.
    params0, grads, traj, hp = _case(golden, case)
    tx = gradtx.sgd(hp["lr"], momentum=hp["momentum"], nesterov=nesterov)
    _assert_traj_close(_run(tx, params0, grads), traj)


def test_adam_matches_torch(golden):
    params0, grads, traj, hp = _case(golden, "adam")
    tx = gradtx.adam(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"])
    _assert_traj_close(_run(tx, params0, grads), traj)


def test_adamw_matches_torch(golden):
    params0, grads, traj, hp = _case(golden, "adamw")
    tx = gradtx.adamw(
        hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"], weight_decay=hp["weight_decay"]
    )
    _assert_traj_close(_run(tx, params0, grads), traj)


def test_adamw_is_not_adam_with_l2(golden):
    """Decoupled decay (AdamW) is not Adam fed `g + wd * theta`; torch agrees on both."""
    params0, grads, traj_w, hp = _case(golden, "adamw")
    _, _, traj_l2, hp_l2 = _case(golden, "adam_l2")
    assert hp == hp_l2
    np.testing.assert_array_equal(golden["adam_l2/grads/w"], golden["adamw/grads/w"])
    wd = hp["weight_decay"]
    adamw = _run(
        gradtx.adamw(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"], weight_decay=wd),
        params0,
        grads,
    )
    adam_l2 = _run(
        gradtx.adam(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"]), params0, grads, l2=wd
    )

    # The two gradtx trajectories differ by far more than the float32 tolerance...
    gap = _max_abs_diff(adamw, adam_l2)
    assert gap > 1000 * ATOL, gap
    # ...the AdamW one is torch.optim.AdamW, and the L2 one is torch.optim.Adam(weight_decay).
    _assert_traj_close(adamw, traj_w)
    _assert_traj_close(adam_l2, traj_l2)
    assert _max_abs_diff(adam_l2, traj_w) > 1000 * ATOL


def test_clipped_scheduled_adamw_matches_torch(golden):
    """clip_grad_norm_(1.0) + AdamW + LambdaLR(linear warmup, cosine) == the gradtx chain.

    torch's clip_grad_norm_ scales by max_norm / (norm + 1e-6), gradtx by max_norm / norm, so
    on clipped steps (norm in [1.2, 5] here) the clipped gradients differ by a relative
    1e-6 / (norm + 1e-6) <= 8.4e-7. Adam's direction m_hat / sqrt(v_hat) is nearly invariant
    to such a scale (only the clipped steps are scaled, so not exactly); the resulting
    parameter difference is of order lr * 1e-6 ~ 1e-8 per step, ~100x below ATOL, so the same
    float32 tolerance applies (measured max deviation: 1.8e-7). The golden grads keep every
    norm at least 0.1 away from max_norm, so both libraries clip exactly the same steps.
    """
    params0, grads, traj, hp = _case(golden, "adamw_clip_sched")
    warmup, total = int(hp["warmup_steps"]), int(hp["total_steps"])
    schedule = gradtx.warmup_cosine_decay_schedule(0.0, hp["peak_lr"], warmup, total, 0.0)
    steps = grads["w"].shape[0]
    # The schedule matches the lr torch used at each step (13 steps: 0..total).
    np.testing.assert_allclose(
        np.asarray(schedule(jnp.arange(steps)), np.float64),
        golden["adamw_clip_sched/lr_used"],
        rtol=1e-6,
        atol=1e-12,
    )
    # Both sides of the clipping threshold are exercised.
    norms = golden["adamw_clip_sched/grad_norm"]
    assert np.any(norms > hp["max_norm"] + 0.1) and np.any(norms < hp["max_norm"] - 0.1)

    tx = gradtx.chain(
        gradtx.clip_by_global_norm(hp["max_norm"]),
        gradtx.adamw(
            schedule, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"], weight_decay=hp["weight_decay"]
        ),
    )
    _assert_traj_close(_run(tx, params0, grads), traj)


def test_seed_schedule_matches_torch_lambdalr(golden):
    """The seed recipe (LambdaLR: linear warmup, then cosine to 0) at every step 0..10000.

    gradtx evaluates schedules in float32 (x64 off), torch's LambdaLR in float64: a few ulps
    of relative error (measured: at most 4.3e-7 relative, 6.9e-11 absolute), hence rtol=1e-6.
    Where the lr approaches 0 at the end, 1 + cos(pi * s) is a cancellation and its relative
    error is unbounded in principle; atol=1e-10 (peak * 3.3e-7, i.e. ~3 float32 ulps of the
    peak) covers that without hiding any real difference (measured near 0: 2.7e-15).
    """
    torch_lr = golden["lr_schedule/lr"]
    peak = float(golden["lr_schedule/hp/max_lr"])
    warmup = int(golden["lr_schedule/hp/warmup_steps"])
    total = int(golden["lr_schedule/hp/total_steps"])
    assert (peak, warmup, total) == (3e-4, 1000, 10000)
    assert torch_lr.shape == (total + 1,)

    schedule = gradtx.warmup_cosine_decay_schedule(0.0, peak, warmup, total, 0.0)
    lr = np.asarray(jax.jit(schedule)(jnp.arange(total + 1)), np.float64)
    np.testing.assert_allclose(lr, torch_lr, rtol=1e-6, atol=1e-10)

    # The landmarks, exactly (in float32): 0 at the start, the peak after warmup, 0 at the end.
    assert torch_lr[0] == 0.0 and lr[0] == 0.0
    assert torch_lr[warmup] == peak and lr[warmup] == np.float64(np.float32(peak))
    assert torch_lr[total] == 0.0 and lr[total] == 0.0
