"""gradtx: composable gradient transformations and optimizers for JAX.

Every optimizer is a `GradientTransformation`: a pure `(init, update)` pair whose state is a
pytree of arrays. Build one from small transformations with `chain`, or take a ready-made
optimizer (`sgd`, `adam`, `adamw`, `lion`), and apply its updates with `apply_updates`.
"""

from ._adam import ScaleByAdamState as ScaleByAdamState
from ._adam import adam as adam
from ._adam import adamw as adamw
from ._adam import scale_by_adam as scale_by_adam
from ._base import EmptyState as EmptyState
from ._base import GradientTransformation as GradientTransformation
from ._base import GradientTransformationExtraArgs as GradientTransformationExtraArgs
from ._base import OptState as OptState
from ._base import Params as Params
from ._base import ScalarOrSchedule as ScalarOrSchedule
from ._base import Schedule as Schedule
from ._base import Updates as Updates
from ._base import identity as identity
from ._base import with_extra_args_support as with_extra_args_support
from ._clipping import clip as clip
from ._clipping import clip_by_global_norm as clip_by_global_norm
from ._clipping import global_norm as global_norm
from ._combine import chain as chain
from ._combine import named_chain as named_chain
from ._decay import add_decayed_weights as add_decayed_weights
from ._foreach import Packed as Packed
from ._foreach import flatten as flatten
from ._foreach import foreach as foreach
from ._lion import ScaleByLionState as ScaleByLionState
from ._lion import lion as lion
from ._lion import scale_by_lion as scale_by_lion
from ._scaling import ScaleByScheduleState as ScaleByScheduleState
from ._scaling import scale as scale
from ._scaling import scale_by_learning_rate as scale_by_learning_rate
from ._scaling import scale_by_schedule as scale_by_schedule
from ._schedules import constant_schedule as constant_schedule
from ._schedules import cosine_decay_schedule as cosine_decay_schedule
from ._schedules import exponential_decay as exponential_decay
from ._schedules import join_schedules as join_schedules
from ._schedules import linear_schedule as linear_schedule
from ._schedules import piecewise_constant_schedule as piecewise_constant_schedule
from ._schedules import polynomial_schedule as polynomial_schedule
from ._schedules import warmup_constant_schedule as warmup_constant_schedule
from ._schedules import warmup_cosine_decay_schedule as warmup_cosine_decay_schedule
from ._sgd import TraceState as TraceState
from ._sgd import sgd as sgd
from ._sgd import trace as trace
from ._update import apply_updates as apply_updates

__version__ = "0.1.0"

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "OptState",
    "Packed",
    "Params",
    "ScalarOrSchedule",
    "ScaleByAdamState",
    "ScaleByLionState",
    "ScaleByScheduleState",
    "Schedule",
    "TraceState",
    "Updates",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip",
    "clip_by_global_norm",
    "constant_schedule",
    "cosine_decay_schedule",
    "exponential_decay",
    "flatten",
    "foreach",
    "global_norm",
    "identity",
    "join_schedules",
    "linear_schedule",
    "lion",
    "named_chain",
    "piecewise_constant_schedule",
    "polynomial_schedule",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_schedule",
    "sgd",
    "trace",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "with_extra_args_support",
]
