#!/usr/bin/env python3
"""The seed package's sequence-classification example (aria-trl's README, "Quick Start": a GPT-2 with a
classification head trained on three tasks in sequence, consolidated after each, every task evaluated
at the end to measure forgetting), written with aria's Python module instead of TRL.

    PYTHONPATH=build/python python3 examples/continual_classification.py [--model DIR] [--steps N]

The tasks are the ones tools/setup.sh fetches into third_party/data (docs/data.md): sentiment, spam and
fortune_topic stand in for the seed's sentiment, toxicity and spam. Without --model it pretrains a tiny
GPT-2 on the fetched English corpus first (once; kept in runs/example-model) so that it runs end to end
on a 2-core CPU in a few minutes; pass a real GPT-2 folder for meaningful numbers.
"""
import argparse
import os
import pathlib
import sys
import time

import aria

ROOT = pathlib.Path(__file__).resolve().parents[1]


def base_model(args):
    if args.model:
        return aria.load_gpt2(args.model, device=args.device)
    out = ROOT / "runs" / "example-model"
    if (out / "model.safetensors").exists():
        return aria.load_gpt2(str(out), device=args.device)
    corpus = ROOT / "third_party" / "data" / "corpus" / "train.txt"
    if not corpus.exists():
        sys.exit("aria: error: no --model and no corpus at third_party/data/corpus (run tools/setup.sh)")
    # The first 400 KB of the corpus are plenty for a tiny model (tokenizing all 6 MB takes a while).
    with open(corpus, encoding="utf-8", errors="replace") as f:
        text = f.read(400_000)
    print(f"pretraining a tiny GPT-2 on the start of {corpus.name} ({args.pretrain_steps} steps; once)", flush=True)
    model, result = aria.pretrain(text=text, preset="tiny", steps=args.pretrain_steps, batch=8, seq=64,
                                  lr=3e-3, warmup=10, device=args.device)
    print(f"  final training loss {result['losses'][-1]:.3f} ({result['tokens_per_second']:.0f} tokens/s)")
    model.save(str(out))
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a Hugging Face GPT-2 folder (default: a tiny one pretrained here)")
    p.add_argument("--tasks", default="sentiment,spam,fortune_topic")
    p.add_argument("--data", default=str(ROOT / "third_party" / "data"))
    p.add_argument("--steps", type=int, default=40, help="optimizer steps per task")
    p.add_argument("--max-train", type=int, default=512, help="training examples per task (0 = all)")
    p.add_argument("--max-eval", type=int, default=150, help="test examples per task (0 = all)")
    p.add_argument("--pretrain-steps", type=int, default=150)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    model = base_model(args)
    tok = aria.Tokenizer.for_model(args.model or str(ROOT / "runs" / "example-model"))
    all_tasks = [aria.load_task(os.path.join(args.data, name), tokenizer=tok, max_seq_len=64,
                                max_train=args.max_train, max_eval=args.max_eval)
                 for name in args.tasks.split(",")]

    # ARIAConfig(plasticity_lambda=0.01, spc_lambda=100.0, adapter_dim=64, slow_lr_ratio=0.5) and the
    # seed's TrainingArguments (learning_rate=2e-4, per_device_train_batch_size=8), with a step budget.
    aria_config = {"plasticity_lambda": 0.01, "spc_lambda": 100.0, "adapter_dim": 64, "slow_lr_ratio": 0.5,
                   "warmup_steps": args.steps // 2}
    train_args = {"lr": 2e-4 if args.model else 1e-3, "batch_size": 8, "steps_per_task": args.steps,
                  "max_seq_len": 64}

    def on_step(rec):  # a callback at every report point; returning True would stop training
        print(f"  {rec['task']} step {rec['phase_step']}/{rec['phase_steps']}: loss {rec['loss']:.4f} "
              f"acc {rec['accuracy']:.2f}", flush=True)

    trainer = aria.ContinualTrainer(model, "aria", aria=aria_config, train=train_args, device=args.device,
                                    log_every=max(1, args.steps // 3), on_step=on_step)
    t0 = time.time()
    trainer.evaluate_all_tasks(all_tasks)               # before any training (forward transfer's b[j])
    for task_id, task in enumerate(all_tasks):
        trainer.add_task(task)                          # trainer.add_task(task_id=...) in the seed
        trainer.train(task)                             # trainer.train()
        trainer.consolidate_task(task_id, task)         # Fisher on this task's training split
        row = trainer.evaluate_all_tasks(all_tasks)[-1]
        print(f"after {task.name}: " + " | ".join(f"{t.name} {100 * a:.1f}" for t, a in zip(all_tasks, row)))

    metrics = trainer.metrics()                         # compute_continual_metrics(task_accuracies)
    print("\naccuracy matrix (rows: after each task; columns: " + ", ".join(t.name for t in all_tasks) + ")")
    for row in trainer.history[1:]:
        print("  " + "  ".join(f"{100 * a:5.1f}" for a in row))
    print(f"ACC {100 * metrics['acc']:.1f}  BWT {100 * metrics['bwt']:+.1f}  "
          f"forgetting {100 * metrics['forgetting']:.1f}  FWT {100 * metrics['fwt']:+.1f}  "
          f"({time.time() - t0:.0f} s, {trainer.optimizer_steps} optimizer steps)")
    trainer.save(str(ROOT / "runs" / "example-checkpoint"))


if __name__ == "__main__":
    main()
