"""The demo model: an MLP on scikit-learn's bundled 8x8 digits, trained deterministically on CPU.

The dataset ships inside scikit-learn (nothing is downloaded). Training is full-batch Adam with
a fixed seed on one thread, so a given machine always produces the same weights.
"""

from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from .executor import run_model
from .model import IntegerModel
from .quantize import quantize_input, quantize_sequential

SEED = 0
HIDDEN = (64, 32)
EPOCHS = 300


@dataclass
class DigitsData:
    train_x: torch.Tensor  # (n_train, 64) float32, pixel intensities 0..16
    train_y: torch.Tensor  # (n_train,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor


@dataclass
class DigitsResult:
    float_model: nn.Sequential
    integer_model: IntegerModel
    data: DigitsData
    float_accuracy: float
    integer_accuracy: float


def load_data() -> DigitsData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.int64)  # noqa: E731
    return DigitsData(as_x(train_x), as_y(train_y), as_x(test_x), as_y(test_y))


def build_mlp() -> nn.Sequential:
    sizes = (64, *HIDDEN, 10)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train(data: DigitsData) -> nn.Sequential:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same summation order, the same weights, every run
    try:
        torch.manual_seed(SEED)
        model = build_mlp()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        x = data.train_x / 16.0
        for _ in tqdm(range(EPOCHS), desc="training", unit="epoch", delay=1.0, leave=False):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), data.train_y)
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    # Fold the 1/16 input normalisation into the first layer so the model takes raw pixels.
    with torch.no_grad():
        model[0].weight /= 16.0
    return model.eval()


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predictions == labels).to(torch.float64).mean())


def integer_predictions(model: IntegerModel, x: torch.Tensor) -> torch.Tensor:
    """Argmax of the int8 logits (the lowest index wins a tie)."""
    return run_model(model, quantize_input(x, model.input_scale))[-1].argmax(dim=1)


def train_and_quantize() -> DigitsResult:
    data = load_data()
    float_model = train(data)
    integer_model = quantize_sequential(float_model, data.train_x, name="digits-mlp")
    with torch.no_grad():
        float_acc = accuracy(float_model(data.test_x).argmax(dim=1), data.test_y)
    int_acc = accuracy(integer_predictions(integer_model, data.test_x), data.test_y)
    integer_model.meta.update({"dataset": "sklearn digits (8x8), 25% stratified test split, seed 0",
                               "float_test_accuracy": float_acc, "integer_test_accuracy": int_acc})
    return DigitsResult(float_model, integer_model, data, float_acc, int_acc)
