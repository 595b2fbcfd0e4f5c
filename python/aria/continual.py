"""The continual-learning protocol of `aria continual`, driven from Python."""
import json
from typing import Any, Dict, List, Optional, Sequence

from . import _core


def read_config(path: str) -> Dict[str, Any]:
    """An experiment config file (JSON, train/continual/aria_config.h) as a dict: pass its "aria" and "train"
    objects to ContinualTrainer(aria=..., train=...)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise _core.InputError(f"read_config: {path}: {e}") from e


def run_sequence(trainer: "_core.ContinualTrainer", tasks: Sequence["_core.Task"], split: str = "") -> Dict[str, Any]:
    """One (method, seed) run exactly as `aria continual` does it (tools/aria/cmd_continual.cpp,
    run_method): every task evaluated before training (b), then per task add_task, train for
    steps_per_task optimizer steps, consolidate_task (methods with consolidation, and methods written
    in Python so that their on_consolidate hook runs; the CLI calls it for the former only) and
    evaluate every task (one row of the accuracy matrix). A joint method (multitask) trains on all
    tasks at once and has one row. Stops early when a callback asked to (trainer.should_stop).

    Returns {"before": b, "matrix": a, "acc", "bwt", "forgetting", "fwt", "stopped": bool}."""
    tasks = list(tasks)
    spec = trainer.method_spec
    before = trainer.evaluate_all_tasks(tasks, split)[-1]
    matrix: List[List[float]] = []
    if spec["joint"]:
        trainer.train_joint(tasks)
        if not trainer.should_stop:
            matrix.append(trainer.evaluate_all_tasks(tasks, split)[-1])
    else:
        for task in tasks:
            if trainer.should_stop:
                break
            task_id = trainer.add_task(task)
            trainer.train(task)
            if trainer.should_stop:
                break
            if spec["consolidation"] or spec["plugin"]:
                trainer.consolidate_task(task_id, task)
            matrix.append(trainer.evaluate_all_tasks(tasks, split)[-1])
    result: Dict[str, Any] = {"before": before, "matrix": matrix, "stopped": bool(trainer.should_stop)}
    complete = len(matrix) == (1 if spec["joint"] else len(tasks))
    if complete:
        result.update({k: v for k, v in _core.cl_metrics(matrix, before=before, joint=spec["joint"]).items()})
    return result


def _optional(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def summary(result: Dict[str, Any]) -> str:
    """One line: ACC, BWT, forgetting, FWT in percent (n/a where undefined)."""
    return (f"ACC {_optional(result.get('acc'))} | BWT {_optional(result.get('bwt'))} | "
            f"forgetting {_optional(result.get('forgetting'))} | FWT {_optional(result.get('fwt'))}")
