"""gradtx: composable gradient transformations and optimizers for JAX.

Every optimizer is a `GradientTransformation`: a pure `(init, update)` pair whose state is a
pytree of arrays. Build one from small transformations with `chain`, or take a ready-made
optimizer (`sgd`, `adam`, `adamw`, `lion`), and apply its updates with `apply_updates`.
"""

from ._accumulate import MultiSteps as MultiSteps
from ._accumulate import MultiStepsState as MultiStepsState
from ._accumulate import multi_steps as multi_steps
from ._adam import ScaleByAdamState as ScaleByAdamState
from ._adam import adam as adam
from ._adam import adamw as adamw
from ._adam import scale_by_adam as scale_by_adam
from ._adam_variants import ScaleByAmsgradState as ScaleByAmsgradState
from ._adam_variants import ScaleByRadamState as ScaleByRadamState
from ._adam_variants import amsgrad as amsgrad
from ._adam_variants import nadam as nadam
from ._adam_variants import nadamw as nadamw
from ._adam_variants import radam as radam
from ._adam_variants import scale_by_amsgrad as scale_by_amsgrad
from ._adam_variants import scale_by_radam as scale_by_radam
from ._adaptive import ScaleByAdadeltaState as ScaleByAdadeltaState
from ._adaptive import ScaleByAdamaxState as ScaleByAdamaxState
from ._adaptive import ScaleByRssState as ScaleByRssState
from ._adaptive import adadelta as adadelta
from ._adaptive import adagrad as adagrad
from ._adaptive import adamax as adamax
from ._adaptive import scale_by_adadelta as scale_by_adadelta
from ._adaptive import scale_by_adamax as scale_by_adamax
from ._adaptive import scale_by_rss as scale_by_rss
from ._adaptive_variants import ScaleByAdanState as ScaleByAdanState
from ._adaptive_variants import ScaleByBeliefState as ScaleByBeliefState
from ._adaptive_variants import ScaleByYogiState as ScaleByYogiState
from ._adaptive_variants import adabelief as adabelief
from ._adaptive_variants import adan as adan
from ._adaptive_variants import scale_by_adan as scale_by_adan
from ._adaptive_variants import scale_by_belief as scale_by_belief
from ._adaptive_variants import scale_by_yogi as scale_by_yogi
from ._adaptive_variants import yogi as yogi
from ._averaging import EmaState as EmaState
from ._averaging import ParamsEma as ParamsEma
from ._averaging import ParamsEmaState as ParamsEmaState
from ._averaging import ema as ema
from ._averaging import incremental_update as incremental_update
from ._averaging import params_ema as params_ema
from ._averaging import periodic_update as periodic_update
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
from ._factored import ScaleByFactoredRmsState as ScaleByFactoredRmsState
from ._factored import ScaleBySM3State as ScaleBySM3State
from ._factored import adafactor as adafactor
from ._factored import scale_by_factored_rms as scale_by_factored_rms
from ._factored import scale_by_sm3 as scale_by_sm3
from ._factored import sm3 as sm3
from ._foreach import Packed as Packed
from ._foreach import flatten as flatten
from ._foreach import foreach as foreach
from ._inject import InjectHyperparamsState as InjectHyperparamsState
from ._inject import inject_hyperparams as inject_hyperparams
from ._layerwise import ScaleByNovogradState as ScaleByNovogradState
from ._layerwise import fromage as fromage
from ._layerwise import lamb as lamb
from ._layerwise import lars as lars
from ._layerwise import novograd as novograd
from ._layerwise import scale_by_novograd as scale_by_novograd
from ._layerwise import scale_by_trust_ratio as scale_by_trust_ratio
from ._lbfgs import ScaleByLBFGSState as ScaleByLBFGSState
from ._lbfgs import lbfgs as lbfgs
from ._lbfgs import scale_by_lbfgs as scale_by_lbfgs
from ._linesearch import ScaleByZoomLinesearchState as ScaleByZoomLinesearchState
from ._linesearch import scale_by_zoom_linesearch as scale_by_zoom_linesearch
from ._lion import ScaleByLionState as ScaleByLionState
from ._lion import lion as lion
from ._lion import scale_by_lion as scale_by_lion
from ._minmax import ScaleByOptimisticGradientState as ScaleByOptimisticGradientState
from ._minmax import optimistic_gradient_descent as optimistic_gradient_descent
from ._minmax import scale_by_optimistic_gradient as scale_by_optimistic_gradient
from ._muon import ScaleByMuonState as ScaleByMuonState
from ._muon import muon as muon
from ._muon import scale_by_muon as scale_by_muon
from ._partition import MaskedNode as MaskedNode
from ._partition import MaskedState as MaskedState
from ._partition import PartitionState as PartitionState
from ._partition import freeze as freeze
from ._partition import labels_by_path as labels_by_path
from ._partition import masked as masked
from ._partition import multi_transform as multi_transform
from ._partition import partition as partition
from ._partition import set_to_zero as set_to_zero
from ._plateau import ApplyEveryState as ApplyEveryState
from ._plateau import ConditionallyTransformState as ConditionallyTransformState
from ._plateau import ReduceOnPlateauState as ReduceOnPlateauState
from ._plateau import apply_every as apply_every
from ._plateau import conditionally_transform as conditionally_transform
from ._plateau import reduce_on_plateau as reduce_on_plateau
from ._processing import AddNoiseState as AddNoiseState
from ._processing import adaptive_grad_clip as adaptive_grad_clip
from ._processing import add_noise as add_noise
from ._processing import centralize as centralize
from ._processing import clip_by_block_rms as clip_by_block_rms
from ._processing import normalize_by_update_norm as normalize_by_update_norm
from ._processing import per_example_global_norm_clip as per_example_global_norm_clip
from ._projections import projection_box as projection_box
from ._projections import projection_l2_ball as projection_l2_ball
from ._projections import projection_non_negative as projection_non_negative
from ._projections import projection_simplex as projection_simplex
from ._rmsprop import ScaleByRmsState as ScaleByRmsState
from ._rmsprop import ScaleByStddevState as ScaleByStddevState
from ._rmsprop import rmsprop as rmsprop
from ._rmsprop import scale_by_rms as scale_by_rms
from ._rmsprop import scale_by_stddev as scale_by_stddev
from ._robust import ApplyIfFiniteState as ApplyIfFiniteState
from ._robust import ZeroNansState as ZeroNansState
from ._robust import apply_if_finite as apply_if_finite
from ._robust import skip_large_updates as skip_large_updates
from ._robust import skip_not_finite as skip_not_finite
from ._robust import zero_nans as zero_nans
from ._scaling import ScaleByScheduleState as ScaleByScheduleState
from ._scaling import scale as scale
from ._scaling import scale_by_learning_rate as scale_by_learning_rate
from ._scaling import scale_by_schedule as scale_by_schedule
from ._schedule_free import ScheduleFreeState as ScheduleFreeState
from ._schedule_free import schedule_free as schedule_free
from ._schedule_free import schedule_free_adamw as schedule_free_adamw
from ._schedule_free import schedule_free_eval_params as schedule_free_eval_params
from ._schedule_free import schedule_free_sgd as schedule_free_sgd
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
from ._shampoo import ScaleByShampooState as ScaleByShampooState
from ._shampoo import scale_by_shampoo as scale_by_shampoo
from ._shampoo import shampoo as shampoo
from ._sign import ScaleByRpropState as ScaleByRpropState
from ._sign import noisy_sgd as noisy_sgd
from ._sign import rprop as rprop
from ._sign import scale_by_rprop as scale_by_rprop
from ._sign import scale_by_sign as scale_by_sign
from ._sign import sign_sgd as sign_sgd
from ._sign import signum as signum
from ._stepsize_free import DAdaptAdamWState as DAdaptAdamWState
from ._stepsize_free import DAdaptSGDState as DAdaptSGDState
from ._stepsize_free import ProdigyState as ProdigyState
from ._stepsize_free import dadapt_adamw as dadapt_adamw
from ._stepsize_free import dadapt_sgd as dadapt_sgd
from ._stepsize_free import polyak_sgd as polyak_sgd
from ._stepsize_free import prodigy as prodigy
from ._stepsize_free import scale_by_polyak as scale_by_polyak
from ._update import apply_updates as apply_updates

__version__ = "0.1.0"

__all__ = [
    "AddNoiseState",
    "ApplyEveryState",
    "ApplyIfFiniteState",
    "ConditionallyTransformState",
    "DAdaptAdamWState",
    "DAdaptSGDState",
    "EmaState",
    "EmptyState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "InjectHyperparamsState",
    "MaskedNode",
    "MaskedState",
    "MultiSteps",
    "MultiStepsState",
    "OptState",
    "Packed",
    "Params",
    "ParamsEma",
    "ParamsEmaState",
    "PartitionState",
    "ProdigyState",
    "ReduceOnPlateauState",
    "ScalarOrSchedule",
    "ScaleByAdadeltaState",
    "ScaleByAdamState",
    "ScaleByAdamaxState",
    "ScaleByAdanState",
    "ScaleByAmsgradState",
    "ScaleByBeliefState",
    "ScaleByFactoredRmsState",
    "ScaleByLBFGSState",
    "ScaleByLionState",
    "ScaleByMuonState",
    "ScaleByNovogradState",
    "ScaleByOptimisticGradientState",
    "ScaleByRadamState",
    "ScaleByRmsState",
    "ScaleByRpropState",
    "ScaleByRssState",
    "ScaleBySM3State",
    "ScaleByScheduleState",
    "ScaleByShampooState",
    "ScaleByStddevState",
    "ScaleByYogiState",
    "ScaleByZoomLinesearchState",
    "Schedule",
    "ScheduleFreeState",
    "TraceState",
    "Updates",
    "ZeroNansState",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "adan",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_noise",
    "amsgrad",
    "apply_every",
    "apply_if_finite",
    "apply_updates",
    "centralize",
    "chain",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "conditionally_transform",
    "constant_schedule",
    "cosine_decay_schedule",
    "dadapt_adamw",
    "dadapt_sgd",
    "ema",
    "exponential_decay",
    "flatten",
    "foreach",
    "freeze",
    "fromage",
    "global_norm",
    "identity",
    "incremental_update",
    "inject_hyperparams",
    "join_schedules",
    "labels_by_path",
    "lamb",
    "lars",
    "lbfgs",
    "linear_schedule",
    "lion",
    "masked",
    "multi_steps",
    "multi_transform",
    "muon",
    "nadam",
    "nadamw",
    "named_chain",
    "noisy_sgd",
    "normalize_by_update_norm",
    "novograd",
    "optimistic_gradient_descent",
    "params_ema",
    "partition",
    "per_example_global_norm_clip",
    "periodic_update",
    "piecewise_constant_schedule",
    "polyak_sgd",
    "polynomial_schedule",
    "prodigy",
    "projection_box",
    "projection_l2_ball",
    "projection_non_negative",
    "projection_simplex",
    "radam",
    "reduce_on_plateau",
    "rmsprop",
    "rprop",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_factored_rms",
    "scale_by_lbfgs",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_muon",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_polyak",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_shampoo",
    "scale_by_sign",
    "scale_by_sm3",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "scale_by_yogi",
    "scale_by_zoom_linesearch",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "set_to_zero",
    "sgd",
    "shampoo",
    "sign_sgd",
    "signum",
    "skip_large_updates",
    "skip_not_finite",
    "sm3",
    "trace",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "with_extra_args_support",
    "yogi",
    "zero_nans",
]
