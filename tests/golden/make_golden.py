"""Regenerates `torch_golden.npz`: reference trajectories from `torch.optim`.

Run from the repository root (needs the CPU build of PyTorch, `pip install torch==2.13.0`)::

    python tests/golden/make_golden.py

The tests (`tests/test_golden_torch.py`) only read the .npz with NumPy; they never import torch.

For every optimizer case the script draws, with a fixed NumPy seed, float32 initial parameters
(a dict of a (4, 3) matrix `w` and a (3,) vector `b`) and one float32 gradient per step, all up
front. PyTorch then runs in float64 on exactly those float32 values: each step sets `p.grad`
directly (no loss, no autograd) and calls `optimizer.step()`. The parameters after every step are
stored in float64, so the reference carries (almost) no rounding error of its own and a float32
run of gradtx can be compared against it at float32 tolerance.

Keys (`<case>` is one of CASES below; `<leaf>` is `w` or `b`)::

    meta/torch_version, meta/numpy_version, meta/seed, meta/cases    (strings / ints)
    <case>/params0/<leaf>   float32, the initial parameters
    <case>/grads/<leaf>     float32, (steps, *shape): the gradient fed at each step
    <case>/traj/<leaf>      float64, (steps, *shape): the parameters after each optimizer.step()
    <case>/hp/<name>        float64 scalars: the hyperparameters used (lr, momentum, ...)
    adamw_clip_sched/lr_used     float64 (steps,): the learning rate torch used at each step
    adamw_clip_sched/grad_norm   float64 (steps,): global gradient norm before clipping
    lr_schedule/lr          float64 (10001,): LambdaLR's lr for steps 0..10000
    lr_schedule/hp/<name>   float64 scalars: max_lr, warmup_steps, total_steps
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
import torch

SEED = 20240611
STEPS = 12
SHAPES = {"w": (4, 3), "b": (3,)}
OUT = pathlib.Path(__file__).resolve().parent / "torch_golden.npz"

# The seed learning-rate schedule (linear warmup, then cosine to 0), as a LambdaLR factor.
SEED_MAX_LR, SEED_WARMUP, SEED_TOTAL = 3e-4, 1000, 10000


def warmup_cosine_lambda(warmup: int, total: int):
    def lr_lambda(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return lr_lambda


def draw_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}


def draw_grads(rng: np.random.Generator, steps: int) -> dict[str, np.ndarray]:
    return {k: rng.standard_normal((steps, *s)).astype(np.float32) for k, s in SHAPES.items()}


def draw_grads_with_norms(rng: np.random.Generator, norms: list[float]) -> dict[str, np.ndarray]:
    """Gradients whose global norm (over both leaves) at step t is about `norms[t]`."""
    g = draw_grads(rng, len(norms))
    for t, target in enumerate(norms):
        n = math.sqrt(sum(float(np.sum(g[k][t].astype(np.float64) ** 2)) for k in g))
        for k in g:
            g[k][t] = (g[k][t] * (target / n)).astype(np.float32)
    return g


def run_torch(params0, grads, make_opt, *, clip=None, make_sched=None):
    """Parameters (float64) after each step, plus the lr used and the pre-clip norm per step."""
    names = list(SHAPES)
    ps = [torch.tensor(params0[k], dtype=torch.float64, requires_grad=True) for k in names]
    opt = make_opt(ps)
    sched = make_sched(opt) if make_sched is not None else None
    steps = grads[names[0]].shape[0]
    traj = {k: np.zeros((steps, *SHAPES[k]), np.float64) for k in names}
    lr_used = np.zeros(steps, np.float64)
    norms = np.zeros(steps, np.float64)
    for t in range(steps):
        for p, k in zip(ps, names, strict=True):
            p.grad = torch.tensor(grads[k][t], dtype=torch.float64)
        norms[t] = math.sqrt(sum(float(torch.sum(p.grad**2)) for p in ps))
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(ps, max_norm=clip)
        lr_used[t] = opt.param_groups[0]["lr"]
        opt.step()
        if sched is not None:
            sched.step()
        for p, k in zip(ps, names, strict=True):
            traj[k][t] = p.detach().numpy()
    return traj, lr_used, norms


def main() -> None:
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    cases: list[str] = []

    def store(case, params0, grads, traj, hp, **extra):
        cases.append(case)
        for k in SHAPES:
            out[f"{case}/params0/{k}"] = params0[k]
            out[f"{case}/grads/{k}"] = grads[k]
            out[f"{case}/traj/{k}"] = traj[k]
        for name, value in hp.items():
            out[f"{case}/hp/{name}"] = np.float64(value)
        for name, value in extra.items():
            out[f"{case}/{name}"] = value

    # SGD with heavy-ball and Nesterov momentum, constant lr.
    for case, nesterov in (("sgd_momentum", False), ("sgd_nesterov", True)):
        hp = {"lr": 0.1, "momentum": 0.9}
        params0, grads = draw_params(rng), draw_grads(rng, STEPS)
        traj, _, _ = run_torch(
            params0,
            grads,
            lambda ps, nesterov=nesterov, hp=hp: torch.optim.SGD(
                ps, lr=hp["lr"], momentum=hp["momentum"], nesterov=nesterov, foreach=False
            ),
        )
        store(case, params0, grads, traj, hp)

    # Adam, default betas and eps.
    hp = {"lr": 1e-2, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
    params0, grads = draw_params(rng), draw_grads(rng, STEPS)
    traj, _, _ = run_torch(
        params0,
        grads,
        lambda ps: torch.optim.Adam(
            ps, lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"], foreach=False
        ),
    )
    store("adam", params0, grads, traj, hp)

    # Adam with torch's *coupled* weight decay (an L2 term: grad + wd * param), for contrast with
    # AdamW below. Same params and grads as the AdamW case.
    hp = {"lr": 1e-2, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.1}
    params0, grads = draw_params(rng), draw_grads(rng, STEPS)
    for case, opt_cls in (("adam_l2", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        traj, _, _ = run_torch(
            params0,
            grads,
            lambda ps, opt_cls=opt_cls, hp=hp: opt_cls(
                ps,
                lr=hp["lr"],
                betas=(hp["b1"], hp["b2"]),
                eps=hp["eps"],
                weight_decay=hp["weight_decay"],
                foreach=False,
            ),
        )
        store(case, params0, grads, traj, hp)

    # AdamW + clip_grad_norm_(1.0) + LambdaLR(warmup 4, cosine to step 12). 13 steps: the lr
    # used at step t is peak * lr_lambda(t) for t = 0..12, i.e. the whole schedule including its
    # final 0 (the LambdaLR recipe is not clamped past `total`, so running longer would no
    # longer be the same schedule). Global grad norms alternate above and below max_norm=1,
    # never close to it, so both libraries agree on which steps are clipped.
    hp = {
        "peak_lr": 1e-2,
        "warmup_steps": 4,
        "total_steps": 12,
        "weight_decay": 0.01,
        "max_norm": 1.0,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
    }
    target_norms = [3.0, 0.5, 2.0, 0.25, 5.0, 0.8, 1.5, 0.1, 4.0, 0.6, 1.2, 0.3, 2.5]
    params0 = draw_params(rng)
    grads = draw_grads_with_norms(rng, target_norms)
    lam = warmup_cosine_lambda(int(hp["warmup_steps"]), int(hp["total_steps"]))
    traj, lr_used, norms = run_torch(
        params0,
        grads,
        lambda ps: torch.optim.AdamW(
            ps,
            lr=hp["peak_lr"],
            betas=(hp["b1"], hp["b2"]),
            eps=hp["eps"],
            weight_decay=hp["weight_decay"],
            foreach=False,
        ),
        clip=hp["max_norm"],
        make_sched=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lam),
    )
    assert all(abs(n - 1.0) > 0.1 for n in norms), norms
    store("adamw_clip_sched", params0, grads, traj, hp, lr_used=lr_used, grad_norm=norms)

    # The seed schedule itself: lr used at step k = get_last_lr() before the k-th sched.step().
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=SEED_MAX_LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine_lambda(SEED_WARMUP, SEED_TOTAL))
    lrs = np.zeros(SEED_TOTAL + 1, np.float64)
    for k in range(SEED_TOTAL + 1):
        lrs[k] = sched.get_last_lr()[0]
        opt.step()  # no grad: a no-op, keeps the optimizer.step() / scheduler.step() order
        sched.step()
    out["lr_schedule/lr"] = lrs
    out["lr_schedule/hp/max_lr"] = np.float64(SEED_MAX_LR)
    out["lr_schedule/hp/warmup_steps"] = np.float64(SEED_WARMUP)
    out["lr_schedule/hp/total_steps"] = np.float64(SEED_TOTAL)

    out["meta/torch_version"] = np.array(torch.__version__)
    out["meta/numpy_version"] = np.array(np.__version__)
    out["meta/seed"] = np.array(SEED, np.int64)
    out["meta/cases"] = np.array(cases)

    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes), torch {torch.__version__}, seed {SEED}")
    for key in sorted(out):
        a = out[key]
        print(f"  {key:34s} {a.dtype!s:8s} {a.shape}")


if __name__ == "__main__":
    main()
