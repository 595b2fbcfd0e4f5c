"""The plug-in baselines replay and lwf, written from docs/continual_trainer.md ("replay", "lwf")."""
import torch
import torch.nn.functional as F

from twin_model import task_logits, hidden, pooled
from twin_rng import Rng, fnv1a_str


class Replay:
    """Per task a reservoir sample (Algorithm R, Rng(seed ^ fnv1a(name) ^ 0xB0FFE4)) of replay_per_task
    training examples, taken at its first micro-batch; each later micro-batch adds replay_batch examples
    drawn with replacement from the earlier tasks' buffers, each through its own task's head, their
    cross-entropy summed / the step's example count."""

    def __init__(self, tw):
        self.per_task = tw.a["replay_per_task"]
        self.batch = tw.a["replay_batch"] or tw.t["batch_size"]
        self.seed = tw.t["seed"]
        self.rng = Rng(self.seed ^ 0x5E7A1B2C3D4E5F60)
        self.buffers = []  # (task, [(ids, label)])

    def on_task_start(self, tw, tid):
        pass

    def after_step(self, tw):
        pass

    def _fill(self, tw, tid):
        if any(t == tid for t, _ in self.buffers):
            return
        task = tw.setup["tasks"][tid]
        r = Rng(self.seed ^ fnv1a_str(task["name"]) ^ 0xB0FFE4)
        res = []
        for i in range(len(task["train_ids"])):
            if len(res) < self.per_task:
                res.append(i)
            else:
                j = r.below(i + 1)
                if j < self.per_task:
                    res[j] = i
        self.buffers.append((tid, [(task["train_ids"][i], task["train_labels"][i]) for i in res]))

    def extra_loss(self, tw, mb, pooled_h, examples):
        self._fill(tw, mb.task)
        earlier = [b for b in self.buffers if b[0] != mb.task and b[1]]
        total = sum(len(b[1]) for b in earlier)
        if total == 0:
            return None
        picked = [[] for _ in earlier]
        for _ in range(self.batch):
            r, k = self.rng.below(total), 0
            while r >= len(earlier[k][1]):
                r -= len(earlier[k][1])
                k += 1
            picked[k].append(earlier[k][1][r])
        loss = None
        for (tid, _), rows in zip(earlier, picked):
            if not rows:
                continue
            b = tw.batch([r[0] for r in rows], [r[1] for r in rows], tid)
            ce = F.cross_entropy(tw.logits(tw.P, b, tid)[0].float(), b.labels, reduction="sum")
            loss = ce if loss is None else loss + ce
        return loss / examples


class Lwf:
    """From the second task on, a frozen copy of the whole model taken at the task's start; each
    micro-batch adds lwf_lambda T^2 sum_j sum_batch KL(softmax(z_old_j / T) || softmax(z_j / T)) over the
    earlier tasks j through j's head, / the step's example count (a 1e-30 guard inside each log)."""

    def __init__(self, tw):
        self.lam = tw.a["lwf_lambda"]
        self.T = tw.a["lwf_temperature"]
        self.task = 0
        self.frozen = None

    def on_task_start(self, tw, tid):
        self.task = tid
        self.frozen = {n: p.detach().clone() for n, p in tw.P.items()} if tid > 0 else None

    def after_step(self, tw):
        pass

    def extra_loss(self, tw, mb, pooled_h, examples):
        if self.frozen is None or mb.task != self.task:
            return None
        with torch.no_grad():
            h_old = pooled(hidden(self.frozen, tw.cfg, mb.ids, tw.gated())[0], mb.lengths)
        loss = None
        for j in range(self.task):
            with torch.no_grad():
                p_old = torch.softmax(task_logits(self.frozen, j, h_old, tw.adapters()).float() / self.T, -1)
            p = torch.softmax(task_logits(tw.P, j, pooled_h, tw.adapters()).float() / self.T, -1)
            kl = (p_old * (torch.log(p_old + 1e-30) - torch.log(p + 1e-30))).sum()
            loss = kl if loss is None else loss + kl
        return loss * (self.lam * self.T * self.T / examples)
