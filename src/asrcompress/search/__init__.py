"""Multi-objective search over per-layer compression policies (Optuna), tracked in MLflow."""

from ._config import driver_config
from ._pareto import hypervolume, knee, reference_point
from ._run import prepare, run_search, work
from ._sample import baseline_params, parameters, policy_from_params, suggest
from ._space import Constraint, Group, Space, check_against_model, load_space, parse_space
from ._study import default_storage, open_storage, open_study, recover_stale
from ._summary import front_rows, load_study, summarize_study

from ._trial import TRIAL_ATTRS, Context, TrialResult, TrialStopped, objectives_of, run_trial
from ._export import export_trial
from ._ray import run_ray
from ._run import dumps
from ._settings import corpus_fingerprint, model_sha256
from ._additivity import UnitCache, additivity, kept_fractions, random_combinations, unit_bytes
from ._sensitivity import DevScorer, Option, Unit, combine, frame_kl, run_sensitivity, scan, scan_options, selected_options, units_of
from ._sensitivity_report import heatmap, log_scan
from ._option_cost import OptionCost
from ._surrogate import Param, Pick, Prediction, Surrogate, budget_picks, make_param, surrogate_hypervolume, surrogate_study
from ._candidates import measure_onnx, score_candidates, surrogate_error
from ._propose import run_propose
from ._jsonl import JsonlLog, kd_loader
from ._progress import snapshot
from ._staged import StagedOptions, run_staged, staged_scan
from ._staged_report import log_finalists, staged_rows
from ._finalists import mark_front, run_finalists, report_on_test, time_finalists
from ._halving import ETA, RUNGS, WER_SLACK, budgets_met, quantization_only, survivors, winners
from ._recipe import (SCHEDULES, check_inputs as check_recipe_inputs, load_recipe, rebuild as rebuild_recipe,
                      recipe_of, rung_slice, write_recipe)

__all__ = ["Constraint", "Group", "Space", "baseline_params", "check_against_model", "default_storage", "driver_config", "front_rows",
           "hypervolume", "knee", "load_space", "load_study", "open_storage", "open_study", "parameters",
           "parse_space", "policy_from_params", "prepare", "recover_stale", "reference_point", "run_search",
           "suggest", "summarize_study", "work"]

from .._callable import make_callable as _make_callable

__all__ += ['corpus_fingerprint', 'model_sha256', 'Context', 'TRIAL_ATTRS', 'TrialResult', 'TrialStopped', 'dumps', 'export_trial', 'objectives_of', 'run_ray', 'run_trial']
__all__ += ['DevScorer', 'Unit', 'selected_options', 'units_of', 'Option', 'additivity', 'combine', 'frame_kl', 'random_combinations', 'heatmap', 'log_scan', 'run_sensitivity', 'scan', 'scan_options', 'OptionCost', 'unit_bytes']
__all__ += ['UnitCache', 'kept_fractions', 'Param', 'Pick', 'Prediction', 'Surrogate', 'budget_picks', 'make_param', 'surrogate_hypervolume', 'surrogate_study',
            'measure_onnx', 'score_candidates', 'surrogate_error', 'run_propose',
            'ETA', 'RUNGS', 'WER_SLACK', 'budgets_met', 'quantization_only', 'run_finalists', 'survivors', 'winners', 'JsonlLog', 'kd_loader',
            'mark_front', 'report_on_test', 'time_finalists', 'snapshot', 'StagedOptions', 'run_staged', 'staged_scan',
            'log_finalists', 'staged_rows', 'check_recipe_inputs', 'load_recipe', 'rebuild_recipe', 'recipe_of',
            'write_recipe', 'SCHEDULES', 'rung_slice']

_make_callable(__name__, "search")  # asrcompress.search(...) is the API function (docs/api.md)
