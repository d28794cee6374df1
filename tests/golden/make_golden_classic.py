"""Regenerates `torch_golden_classic.npz`: trajectories of the classic `torch.optim` optimizers.

Run from the repository root (needs the CPU build of PyTorch, `pip install torch==2.13.0`)::

    python tests/golden/make_golden_classic.py

The tests (`tests/test_classic.py`) only read the .npz with NumPy; they never import torch.

The recipe is `make_golden.py`'s (whose helpers this script reuses): with a fixed NumPy seed,
float32 initial parameters (`w` of shape (4, 3), `b` of shape (3,)) and one float32 gradient
per step are drawn up front; PyTorch runs in float64 on exactly those values, setting `p.grad`
directly before each `optimizer.step()` (single-tensor code path, `foreach=False`), and the
parameters after every step are stored in float64.

Keys (`<case>` is one of `meta/cases`; `<leaf>` is `w` or `b`)::

    meta/torch_version, meta/numpy_version, meta/seed, meta/cases
    <case>/params0/<leaf>   float32, the initial parameters
    <case>/grads/<leaf>     float32, (steps, *shape): the gradient fed at each step
    <case>/traj/<leaf>      float64, (steps, *shape): the parameters after each step
    <case>/hp/<name>        float64 scalars: the PyTorch hyperparameters used

Gradient shapes per case: most cases use standard normal gradients. `amsgrad` scales step t
by `2 * 0.7^t` so that the second moment shrinks and the running maximum matters. The Rprop
cases add a fixed per-element offset (+-1.5 on 8 of the 15 elements, 0 elsewhere) so that
some coordinates keep their sign (step sizes grow to the upper clamp) while others flip.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_golden import SHAPES, draw_grads, draw_params, run_torch

SEED = 20240923
STEPS = 12
OUT = pathlib.Path(__file__).resolve().parent / "torch_golden_classic.npz"
# A momentum_decay so large that 0.96 ** (t * momentum_decay) underflows to 0 for every t >= 1:
# torch's NAdam then uses the constant momentum beta1 (Dozat's rule as in Optax's nadam).
NADAM_CONSTANT_MOMENTUM_DECAY = 1e6


def main() -> None:
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    cases: list[str] = []

    def run(case, make_opt, hp, *, params0=None, grads=None, steps=STEPS):
        params0 = draw_params(rng) if params0 is None else params0
        grads = draw_grads(rng, steps) if grads is None else grads
        traj, _, _ = run_torch(params0, grads, make_opt)
        cases.append(case)
        for k in SHAPES:
            out[f"{case}/params0/{k}"] = params0[k]
            out[f"{case}/grads/{k}"] = grads[k]
            out[f"{case}/traj/{k}"] = traj[k]
        for name, value in hp.items():
            out[f"{case}/hp/{name}"] = np.float64(value)
        return params0, grads

    # Adagrad with Optax's defaults (initial accumulator 0.1, eps 1e-7), and with PyTorch's
    # (0, 1e-10) plus lr_decay and an L2 weight decay.
    hp = {"lr": 0.1, "initial_accumulator_value": 0.1, "eps": 1e-7}
    run("adagrad", lambda ps, hp=hp: torch.optim.Adagrad(ps, **hp, foreach=False), hp)
    hp = {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.0}
    hp["eps"] = 1e-10
    run("adagrad_lr_decay_l2", lambda ps, hp=hp: torch.optim.Adagrad(ps, **hp, foreach=False), hp)

    # RMSprop: eps = 1e-3 is large enough that putting it inside the root would move the
    # trajectory by far more than float32 round-off.
    for case, centered, momentum in (
        ("rmsprop", False, 0.0),
        ("rmsprop_centered", True, 0.0),
        ("rmsprop_momentum", False, 0.9),
        ("rmsprop_centered_momentum", True, 0.9),
    ):
        hp = {"lr": 1e-2, "alpha": 0.9, "eps": 1e-3, "momentum": momentum}
        run(
            case,
            lambda ps, hp=hp, centered=centered: torch.optim.RMSprop(
                ps, **hp, centered=centered, foreach=False
            ),
            hp,
        )

    # Adadelta with PyTorch's defaults, and with other constants and an L2 weight decay.
    hp = {"lr": 1.0, "rho": 0.9, "eps": 1e-6}
    run("adadelta", lambda ps, hp=hp: torch.optim.Adadelta(ps, **hp, foreach=False), hp)
    hp = {"lr": 0.5, "rho": 0.95, "eps": 1e-4, "weight_decay": 0.1}
    run("adadelta_l2", lambda ps, hp=hp: torch.optim.Adadelta(ps, **hp, foreach=False), hp)

    # Adamax.
    hp = {"lr": 2e-2, "b1": 0.9, "b2": 0.99, "eps": 1e-8}
    run(
        "adamax",
        lambda ps, hp=hp: torch.optim.Adamax(
            ps, lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"], foreach=False
        ),
        hp,
    )

    # AMSGrad (torch.optim.Adam(amsgrad=True)), on shrinking gradients.
    hp = {"lr": 1e-2, "b1": 0.9, "b2": 0.99, "eps": 1e-8}
    grads = draw_grads(rng, STEPS)
    scale = 2.0 * 0.7 ** np.arange(STEPS)
    for k in SHAPES:
        grads[k] = (grads[k] * scale.reshape((STEPS,) + (1,) * len(SHAPES[k]))).astype(np.float32)
    run(
        "amsgrad",
        lambda ps, hp=hp: torch.optim.Adam(
            ps,
            lr=hp["lr"],
            betas=(hp["b1"], hp["b2"]),
            eps=hp["eps"],
            amsgrad=True,
            foreach=False,
        ),
        hp,
        grads=grads,
    )

    # NAdam with a constant momentum (see NADAM_CONSTANT_MOMENTUM_DECAY) and, on the same
    # data, with PyTorch's default momentum schedule; NAdamW (decoupled decay).
    def nadam(momentum_decay, weight_decay=0.0, decoupled=False):
        hp = {"lr": 1e-2, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": weight_decay}
        hp["momentum_decay"] = momentum_decay
        make = lambda ps: torch.optim.NAdam(
            ps,
            lr=hp["lr"],
            betas=(hp["b1"], hp["b2"]),
            eps=hp["eps"],
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled,
            foreach=False,
        )
        return make, hp

    make, hp = nadam(NADAM_CONSTANT_MOMENTUM_DECAY)
    params0, grads = run("nadam", make, hp)
    make, hp = nadam(4e-3)
    run("nadam_torch_default", make, hp, params0=params0, grads=grads)
    make, hp = nadam(NADAM_CONSTANT_MOMENTUM_DECAY, weight_decay=0.1, decoupled=True)
    run("nadamw", make, hp)

    # RAdam, 14 steps (rectification starts at t = 6): eps = 1e-8 (default), and eps = 1e-2
    # where PyTorch's placement of eps differs visibly from gradtx's (see scale_by_radam).
    for case, eps in (("radam", 1e-8), ("radam_eps", 1e-2)):
        hp = {"lr": 1e-2, "b1": 0.9, "b2": 0.999, "eps": eps}
        run(
            case,
            lambda ps, hp=hp: torch.optim.RAdam(
                ps, lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"], foreach=False
            ),
            hp,
            steps=14,
        )

    # Rprop with PyTorch's defaults, and with tight clamps that both bind within 12 steps.
    offset_rng = np.random.default_rng(SEED + 1)
    for case, hp in (
        ("rprop", {"lr": 0.01, "eta_minus": 0.5, "eta_plus": 1.2, "min": 1e-6, "max": 50.0}),
        (
            "rprop_clamped",
            {"lr": 0.01, "eta_minus": 0.4, "eta_plus": 1.5, "min": 5e-3, "max": 2e-2},
        ),
    ):
        grads = draw_grads(rng, STEPS)
        flat = np.zeros(15)
        flat[:8] = 1.5 * offset_rng.choice([-1.0, 1.0], size=8)
        flat = offset_rng.permutation(flat)
        offsets = {"w": flat[:12].reshape(4, 3), "b": flat[12:]}
        for k in SHAPES:
            grads[k] = (0.5 * grads[k] + offsets[k]).astype(np.float32)
        run(
            case,
            lambda ps, hp=hp: torch.optim.Rprop(
                ps,
                lr=hp["lr"],
                etas=(hp["eta_minus"], hp["eta_plus"]),
                step_sizes=(hp["min"], hp["max"]),
                foreach=False,
            ),
            hp,
            grads=grads,
        )

    out["meta/torch_version"] = np.array(torch.__version__)
    out["meta/numpy_version"] = np.array(np.__version__)
    out["meta/seed"] = np.array(SEED, np.int64)
    out["meta/cases"] = np.array(cases)

    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes), torch {torch.__version__}, seed {SEED}")
    for case in cases:
        steps = out[f"{case}/grads/w"].shape[0]
        hps = {k.split("/")[-1]: float(v) for k, v in out.items() if k.startswith(f"{case}/hp/")}
        print(f"  {case:28s} {steps} steps  {hps}")


if __name__ == "__main__":
    main()
