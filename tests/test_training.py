"""The shared training loop and checkpoints: resume equivalence, divergence, early stopping, safe loading."""

from __future__ import annotations

import pickle

import pytest
import torch
from randomness import fixed_manual_seed

from canonflow.checkpoint import CheckpointError, atomic_save, load, read_checkpoint, register_model, save_model
from canonflow.training import TrainConfig, TrainingDiverged, train


@register_model
class TinyModel(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.linear = torch.nn.Linear(width, 1)

    def config(self) -> dict:
        return {"width": self.width}

    @classmethod
    def from_config(cls, config: dict) -> TinyModel:
        return cls(**config)


DATA = torch.randn(256, 3, generator=torch.Generator().manual_seed(0))
TARGET = DATA @ torch.tensor([1.0, -2.0, 0.5]) + 0.3


def _loss(model: TinyModel):
    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, len(DATA), (32,), generator=generator)
        return (model.linear(DATA[index]).squeeze(-1) - TARGET[index]).pow(2).mean()

    return loss_fn


def _model() -> TinyModel:
    fixed_manual_seed(1)
    return TinyModel(3)


@pytest.mark.statistical
def test_training_reduces_the_loss() -> None:
    model = _model()
    result = train(model, _loss(model), TrainConfig(steps=300, lr=0.05, progress=False))
    assert result.losses[-1] < 1e-3 < result.losses[0]


def test_resumed_run_ends_in_the_same_state(tmp_path) -> None:
    full = _model()
    train(full, _loss(full), TrainConfig(steps=60, lr=0.01, progress=False))
    checkpoint = str(tmp_path / "state.pt")
    half = _model()
    config = TrainConfig(steps=60, lr=0.01, progress=False, checkpoint=checkpoint, checkpoint_every=30)
    train(half, _loss(half), TrainConfig(**{**config.__dict__, "time_limit": 0.0}))  # stops after one step
    assert read_checkpoint(checkpoint)["step"] == 1
    resumed = _model()
    train(resumed, _loss(resumed), TrainConfig(**{**config.__dict__, "resume": True}))
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_step_dependent_loss_resumes_where_it_was(tmp_path) -> None:
    # A loss whose weight follows the step (an annealing schedule) learns the step it starts from through
    # on_start: a run stopped after one step and resumed ends where an uninterrupted one does.
    def scheduled(model: TinyModel, starts: list[int]):
        step = [0]
        base = _loss(model)

        def start(first: int) -> None:
            starts.append(first)
            step[0] = first

        def loss_fn(generator: torch.Generator) -> torch.Tensor:
            step[0] += 1
            return base(generator) * (1.0 + step[0] / 10)

        return loss_fn, start

    config = TrainConfig(steps=20, lr=0.01, progress=False, checkpoint=str(tmp_path / "state.pt"))
    starts: list[int] = []
    runs = {"full": {"checkpoint": None}, "half": {"time_limit": 0.0}, "resumed": {"resume": True}}
    models = {}
    for name, options in runs.items():  # "half" stops after one step, "resumed" continues it
        models[name] = _model()
        loss_fn, start = scheduled(models[name], starts)
        train(models[name], loss_fn, TrainConfig(**{**config.__dict__, **options}), on_start=start)
    full, resumed = models["full"], models["resumed"]
    assert starts == [0, 0, 1]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_nan_loss_stops_with_the_step(tmp_path) -> None:
    model = _model()

    def loss_fn(generator: torch.Generator) -> torch.Tensor:
        loss_fn.calls += 1
        value = model.linear(DATA[:4]).sum()
        return value * float("nan") if loss_fn.calls == 5 else value

    loss_fn.calls = 0
    with pytest.raises(TrainingDiverged, match="step 4"):
        train(model, loss_fn, TrainConfig(steps=10, progress=False, checkpoint=str(tmp_path / "c.pt")))


def test_early_stopping_restores_the_best_weights() -> None:
    model = _model()
    values = iter([3.0, 1.0, 2.0, 2.5, 2.7, 2.8, 2.9])
    snapshots = []

    def validate() -> float:
        snapshots.append(model.linear.weight.detach().clone())
        return next(values)

    result = train(model, _loss(model), TrainConfig(steps=100, eval_every=5, patience=2, progress=False), validate)
    assert result.stopped_early and result.best_validation == 1.0 and result.best_step == 10
    torch.testing.assert_close(model.linear.weight, snapshots[1])


def test_model_checkpoint_round_trip(tmp_path) -> None:
    model = _model()
    path = tmp_path / "model.pt"
    save_model(path, model)
    again = load(path)
    assert isinstance(again, TinyModel)
    torch.testing.assert_close(again.linear.weight, model.linear.weight)


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_malicious_pickle_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as stream:
        pickle.dump({"format": "canonflow", "payload": Exploit()}, stream)
    with pytest.raises(CheckpointError, match="not a readable canonflow checkpoint"):
        load(path)


def test_truncated_and_foreign_files_give_clear_errors(tmp_path) -> None:
    path = tmp_path / "model.pt"
    save_model(path, _model())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load(path)
    atomic_save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a canonflow checkpoint"):
        load(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load(tmp_path / "missing.pt")


def test_wrong_architecture_gives_a_clear_error(tmp_path) -> None:
    path = tmp_path / "model.pt"
    save_model(path, _model())
    payload = read_checkpoint(path)
    payload["config"] = {"width": 5}
    atomic_save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit a TinyModel"):
        load(path)


def test_train_runs_the_lbfgs_stage_after_adam_and_keeps_the_best_weights() -> None:
    """``TrainConfig(polish_steps=k)`` with a full-batch ``objective``: ``k`` L-BFGS steps after Adam, each
    validated (counted on from the Adam steps), the best weights kept; without an objective it is refused."""
    target = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    model = torch.nn.Linear(3, 1, dtype=torch.float64)

    def objective() -> torch.Tensor:
        return ((model.weight[0] - target) ** 2).sum() + model.bias[0] ** 2

    config = TrainConfig(steps=5, lr=1e-3, eval_every=5, polish_steps=3, progress=False)
    validate = lambda: float(objective())  # noqa: E731
    result = train(model, lambda generator: objective(), config, validate=validate, objective=objective)
    assert result.steps == 5 and result.polish_steps == 3 and len(result.losses) == 8
    assert [step for step, _ in result.validation] == [5, 6, 7, 8]
    assert result.best_validation == min(value for _, value in result.validation) < 1e-12
    torch.testing.assert_close(model.weight[0].detach(), target)
    with pytest.raises(ValueError, match="polish_steps > 0 needs a full-batch objective"):
        train(model, lambda generator: objective(), config)
