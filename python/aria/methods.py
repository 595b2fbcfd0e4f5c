"""Continual-learning methods written in Python, on aria tensors with autograd, plugged into the
trainer through the method interface (aria.register_method; python/src/method.cpp lists the hooks)."""
from typing import Any, Dict, List

from . import _core


class L2ToPrevious:
    """L2 to the previous tasks' weights: lam/2 * sum_t ||theta - theta*_t||^2 over the trunk (every
    parameter that is not a task's adapter or head), theta*_t = the trunk after task t.

    This is EWC with a uniform Fisher (F = 1): the built-in "ewc" with aria.fisher_estimator
    "uniform" and spc_lambda = lam trains the same model (python/tests/test_python_method.py checks
    it). The anchor of task t is taken when task t+1 starts (on_task_start), which is where
    `aria continual` leaves it too: it calls consolidate_task only for methods with a built-in
    consolidation.

        aria.register_method("l2", lambda: aria.L2ToPrevious(100.0), base="finetune")
        trainer = aria.ContinualTrainer(model, "l2", train={...})
    """

    def __init__(self, lam: float) -> None:
        self.lam = float(lam)
        self.anchors: List[Dict[str, "_core.Tensor"]] = []

    @staticmethod
    def _trunk(trainer: "_core.ContinualTrainer") -> Dict[str, "_core.Tensor"]:
        return {n: p for n, p in trainer.named_parameters().items() if not n.startswith("task.")}

    def on_task_start(self, trainer: "_core.ContinualTrainer", task_id: int) -> None:
        if task_id > 0:
            self.anchors.append({n: p.clone() for n, p in self._trunk(trainer).items()})

    def extra_loss(self, trainer: "_core.ContinualTrainer", batch: Any) -> "_core.Tensor | None":
        if not self.anchors:
            return None
        params = self._trunk(trainer)
        total = None
        for anchor in self.anchors:
            for name, theta_star in anchor.items():
                p = params[name]
                if not p.requires_grad:
                    continue
                term = _core.sum(_core.square(p - theta_star))
                total = term if total is None else total + term
        return None if total is None else total * (self.lam / 2)

    # Checkpoints: the anchors go into the trainer's checkpoint.safetensors as method.anchor<t>.<name>.
    def state_tensors(self) -> Dict[str, "_core.Tensor"]:
        return {f"anchor{t}.{n}": p for t, anchor in enumerate(self.anchors) for n, p in anchor.items()}

    def state_json(self) -> Dict[str, Any]:
        return {"lam": self.lam, "anchors": len(self.anchors)}

    def load_state(self, trainer: Any, tensors: Dict[str, "_core.Tensor"], state: Dict[str, Any]) -> None:
        self.lam = float(state["lam"])
        self.anchors = [{} for _ in range(int(state["anchors"]))]
        for key, t in tensors.items():
            head, name = key.split(".", 1)
            self.anchors[int(head[len("anchor"):])][name] = t
