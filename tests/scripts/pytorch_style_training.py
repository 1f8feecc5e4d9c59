"""A PyTorch training script in the style of PyTorch's tutorials and recipes, for tinygrad_cnn's tests.

Our own script (fetched code stays out of the repository), exercising the API surface that these public
files use, which it was checked against: pytorch/tutorials ``beginner_source/basics/data_tutorial.py``,
``transforms_tutorial.py``, ``buildmodel_tutorial.py``, ``optimization_tutorial.py`` and
``saveloadrun_tutorial.py``; ``recipes_source/recipes/what_is_state_dict.py``,
``saving_and_loading_a_general_checkpoint.py``, ``zeroing_out_gradients.py`` and
``defining_a_neural_network.py``; and the training loops of pytorch/examples (gradient clipping,
schedulers stepped per batch and per epoch, ReduceLROnPlateau). That is: a custom ``Dataset`` with
transforms, ``DataLoader``/``Subset``/``random_split``, torchvision's MNIST with ``ToTensor`` and a
one-hot ``Lambda`` target transform, a BatchNorm CNN initialised with ``model.apply``, label-smoothed
``CrossEntropyLoss``, SGD with Nesterov momentum, ``OneCycleLR`` per batch, ``clip_grad_norm_`` and
``clip_grad_value_``, ``ReduceLROnPlateau`` per epoch, evaluation under ``no_grad`` in eval mode, a
general checkpoint saved with ``torch.save`` and resumed with ``torch.load(..., weights_only=True)``,
and the learning rates of the other schedulers.

The weights start from a formula, not from a random generator, and nothing is shuffled, so PyTorch and
tinygrad_cnn compute the same numbers: the last line, ``RESULT {json}``, is compared between the two by
tests/test_pytorch_scripts.py (this file run unchanged on PyTorch, and with only its import lines
renamed on tinygrad_cnn).
"""

import json
import math
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from torch.utils.data import DataLoader, Dataset, Subset, random_split
from torchvision import datasets
from torchvision.transforms import Lambda, ToTensor


class NoisyQuadrants(Dataset):
    """(1, 12, 12) noise images labelled by the sign of their sum and of their first pixel (4 classes)."""

    def __init__(self, count, transform=None, target_transform=None):
        rng = np.random.default_rng(0)
        self.images = rng.standard_normal((count, 1, 12, 12)).astype(np.float32)
        self.labels = (self.images.reshape(count, -1).sum(1) > 0) + 2 * (self.images[:, 0, 0, 0] > 0)
        self.transform, self.target_transform = transform, target_transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        image, label = torch.from_numpy(self.images[idx]), int(self.labels[idx])
        if self.transform:
            image = self.transform(image)
        if self.target_transform:
            label = self.target_transform(label)
        return image, label


class SmallBatchNormCNN(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.0),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


def formula_init(module):
    """Deterministic weights (a scaled sine wave), zero biases, BatchNorm at (1, 0)."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        with torch.no_grad():
            n = module.weight.numel()
            wave = torch.sin(torch.arange(n, dtype=torch.float32)).reshape(module.weight.shape)
            module.weight.copy_(wave / math.sqrt(n / module.weight.shape[0]))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.constant_(module.weight, 1)
        nn.init.constant_(module.bias, 0)


def evaluate(model, loader, loss_fn):
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images)
            total += loss_fn(logits, labels).item() * len(labels)
            correct += (logits.argmax(1) == labels).type(torch.float).sum().item()
    return total / len(loader.dataset), correct / len(loader.dataset)


def make_optimizer(model):
    return optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def train(result, workdir):
    data = NoisyQuadrants(256)
    train_set, val_set = Subset(data, range(0, 192)), Subset(data, range(192, 256))
    train_loader = DataLoader(train_set, batch_size=32, shuffle=False, num_workers=2, drop_last=True)
    val_loader = DataLoader(val_set, batch_size=64)
    model = SmallBatchNormCNN()
    model.apply(formula_init)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = make_optimizer(model)
    schedule = OneCycleLR(optimizer, max_lr=0.1, steps_per_epoch=len(train_loader), epochs=3)
    watched = optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.01)
    plateau = ReduceLROnPlateau(watched, mode="min", factor=0.5, patience=0)
    result["parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for epoch in range(3):
        model.train()
        running = 0.0
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            nn.utils.clip_grad_value_(model.parameters(), clip_value=0.5)
            optimizer.step()
            schedule.step()
            running += loss.item()
        val_loss, accuracy = evaluate(model, val_loader, loss_fn)
        plateau.step(99.0 if epoch == 1 else val_loss)
        result[f"epoch{epoch}"] = {
            "train_loss": running / len(train_loader),
            "val_loss": val_loss,
            "accuracy": accuracy,
            "grad_norm": float(norm),
            "lr": schedule.get_last_lr()[0],
            "momentum": optimizer.param_groups[0]["momentum"],
            "plateau_lr": watched.param_groups[0]["lr"],
        }
    bn = model.features[1]
    result["batchnorm"] = [
        bn.num_batches_tracked.item(),
        bn.running_mean.abs().sum().item(),
        bn.running_var.sum().item(),
    ]
    result["flat_parameters"] = list(nn.utils.parameters_to_vector(model.parameters()).shape)

    path = os.path.join(workdir, "checkpoint.tar")
    torch.save(
        {
            "epoch": 3,
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "scheduler_state_dict": schedule.state_dict(),
            "loss": loss.item(),
        },
        path,
    )
    checkpoint = torch.load(path, weights_only=True)
    resumed = SmallBatchNormCNN()
    resumed_optimizer = make_optimizer(resumed)
    resumed.load_state_dict(checkpoint["model_state_dict"])
    resumed_optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    result["checkpoint"] = [checkpoint["epoch"], checkpoint["loss"], sorted(checkpoint["optimizer_state_dict"])]
    result["state_dict"] = {k: list(v.size()) for k, v in resumed.state_dict().items()}
    # one more epoch on both: the original and the resumed copy stay identical
    for net, opt in ((model, optimizer), (resumed, resumed_optimizer)):
        net.train()
        for images, labels in train_loader:
            opt.zero_grad()
            loss_fn(net(images), labels).backward()
            opt.step()
    result["resumed_equal"] = evaluate(model, val_loader, loss_fn) == evaluate(resumed, val_loader, loss_fn)


def data_pipeline(result):
    one_hot = Lambda(lambda y: torch.zeros(10, dtype=torch.float).scatter_(0, torch.tensor(y), value=1))
    mnist = datasets.MNIST(root="data", train=False, download=True, transform=ToTensor(), target_transform=one_hot)
    image, target = mnist[0]
    result["mnist_sample"] = [list(image.shape), round(image.sum().item(), 3), target.tolist()]
    loader = DataLoader(Subset(mnist, range(100)), batch_size=32)
    images, targets = next(iter(loader))
    result["mnist_batch"] = [list(images.size()), list(targets.size()), len(loader)]
    first, second = random_split(range(10), [7, 3], generator=torch.Generator().manual_seed(42))
    result["split"] = [len(first), len(second), sorted(list(first) + list(second)) == list(range(10))]


def scheduler_sequences(result):
    param = nn.Parameter(torch.zeros(2))
    makers = {
        "StepLR": lambda o: StepLR(o, step_size=2, gamma=0.5),
        "MultiStepLR": lambda o: MultiStepLR(o, milestones=[1, 3], gamma=0.1),
        "ExponentialLR": lambda o: ExponentialLR(o, gamma=0.9),
        "CosineAnnealingLR": lambda o: CosineAnnealingLR(o, T_max=4, eta_min=0.001),
        "LambdaLR": lambda o: LambdaLR(o, lr_lambda=lambda e: 0.95**e),
        "LinearLR": lambda o: LinearLR(o, start_factor=0.25, total_iters=3),
        "SequentialLR": lambda o: SequentialLR(
            o, [LinearLR(o, start_factor=0.5, total_iters=2), ExponentialLR(o, gamma=0.9)], milestones=[2]
        ),
    }
    for name, make in makers.items():
        optimizer = optim.SGD([param], lr=0.1)
        schedule = make(optimizer)
        rates = []
        for _ in range(6):
            optimizer.step()
            schedule.step()
            rates.append(schedule.get_last_lr()[0])
        result[name] = rates


def main():
    torch.manual_seed(0)
    result = {}
    with tempfile.TemporaryDirectory() as workdir:
        train(result, workdir)
    data_pipeline(result)
    scheduler_sequences(result)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
