"""The loop the first-stage students share (distilled bi-encoder, ColBERT encoder): steps within a time budget
and an epoch cap, linear warm-up and decay, periodic dev evaluations, and the checkpoint best on dev kept. The
starting model is evaluated first, so a report always says whether training helped."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from tqdm import tqdm

__all__ = ["LoopConfig", "LoopResult", "StudentConfig", "shuffled_batches", "train_loop"]

Batch = TypeVar("Batch")
Item = TypeVar("Item")


def shuffled_batches(items: list[Item], size: int, rng: random.Random) -> Callable[[], list[list[Item]]]:
    """An epoch's batches of `size` items (the last partial one dropped), shuffled afresh for every epoch."""
    def epoch() -> list[list[Item]]:
        rng.shuffle(items)
        return [items[i : i + size] for i in range(0, len(items) - size + 1, size)]
    return epoch


@dataclass
class StudentConfig:
    """What every first-stage student's training takes (the cascade-scored lists, evaluation/cascade_teacher.py)."""

    teachers: Path
    output: Path
    base: str = "minilm"
    """The starting encoder: a catalogue name or folder (default: the shipped first stage)."""
    lists_per_step: int = 8
    learning_rate: float = 3e-5
    warmup_fraction: float = 0.05
    epochs: int = 4
    time_budget_min: float = 30.0
    evaluations: int = 3
    dev_candidates: int = 30
    seed: int = 13
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @property
    def loop(self) -> LoopConfig:
        return LoopConfig(self.time_budget_min, self.epochs, self.evaluations, self.warmup_fraction)

    @property
    def torch_device(self) -> torch.device:
        return torch.device("cuda" if torch.cuda.is_available() and self.device != "cpu" else "cpu")


@dataclass
class LoopConfig:
    time_budget_min: float
    epochs: int
    evaluations: int
    warmup_fraction: float = 0.05


@dataclass
class LoopResult:
    best: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    minutes: float = 0.0


def train_loop(model: torch.nn.Module, param_groups: Sequence[dict[str, Any]], epoch: Callable[[], Iterable[Batch]],
               steps_per_epoch: int, loss: Callable[[Batch], torch.Tensor], evaluate: Callable[[], dict[str, float]],
               config: LoopConfig, desc: str) -> LoopResult:
    """Train `model` (its state at the best dev evaluation restored at the end). Each param group names its
    `peak_lr`; `evaluate` returns dev figures whose "dev_mean" is what checkpoints are chosen by."""
    optimizer = torch.optim.AdamW([dict(group) for group in param_groups])
    total = max(steps_per_epoch * config.epochs, 1)
    began, losses = time.monotonic(), list[float]()

    def checkpoint(step: int) -> dict[str, Any]:
        model.eval()
        figures = evaluate() | {"step": step, "minutes": round((time.monotonic() - began) / 60, 2)}
        if losses:
            figures["loss"] = float(np.mean(losses[-100:]))
        model.train()
        tqdm.write(f"dev: {figures}")
        return figures

    result = LoopResult(best=checkpoint(0))
    result.history.append(result.best)
    best_state = copy.deepcopy(model.state_dict())
    step, next_eval = 0, 1
    with tqdm(total=total, desc=desc, unit="step") as bar:
        for _ in range(config.epochs):
            for batch in epoch():
                progress = max(step / total, (time.monotonic() - began) / (config.time_budget_min * 60))
                if progress >= 1:
                    break
                for group in optimizer.param_groups:
                    group["lr"] = group["peak_lr"] * min(1.0, progress / config.warmup_fraction) * (1 - progress)
                value = loss(batch)
                value.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
                losses.append(value.item())
                step += 1
                bar.update()
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
                if progress >= next_eval / config.evaluations:
                    next_eval += 1
                    result.history.append(checkpoint(step))
                    if result.history[-1]["dev_mean"] > result.best["dev_mean"]:
                        result.best, best_state = result.history[-1], copy.deepcopy(model.state_dict())
            else:
                continue
            break
    if result.history[-1]["step"] != step:
        result.history.append(checkpoint(step))
        if result.history[-1]["dev_mean"] > result.best["dev_mean"]:
            result.best, best_state = result.history[-1], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    result.steps, result.minutes = step, (time.monotonic() - began) / 60
    return result
