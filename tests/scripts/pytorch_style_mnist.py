"""A PyTorch MNIST training script, written against torch and torchvision, for tinygrad_cnn's tests.

It uses PyTorch's API the way pytorch/examples' ``mnist/main.py`` does (checked against that file at
commit 77f55b9 of github.com/pytorch/examples): the same network (two 3x3 convolutions, max-pool,
two dropouts, two linear layers, log-softmax), ``torch.accelerator`` to pick a device, torchvision's
``datasets.MNIST(..., download=True, transform=Compose([ToTensor(), Normalize(...)]))``,
``DataLoader`` keyword arguments, ``optim.Adadelta`` with ``StepLR``, ``F.nll_loss`` (``reduction="sum"``
in evaluation), ``argmax(dim=1, keepdim=True)``, ``eq(target.view_as(pred)).sum().item()`` and
``torch.save(model.state_dict(), ...)``. It is not a copy of that file: the workplace rule keeps fetched
code out of the repository, so this one is our own, and adds ``--limit-train``/``--limit-test`` (a
``Subset`` of each split, for a quick test) and a last line ``RESULT {json}`` for the test to read.

tests/test_pytorch_scripts.py runs it after renaming only its import lines (torch and torchvision to
tinygrad_cnn), and, with PyTorch installed, as it is against PyTorch (a small torchvision stand-in
feeding it the same MNIST arrays). The full-epoch comparison is in docs/pytorch.md.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms


class DigitClassifier(nn.Module):
    """(N, 1, 28, 28) images -> (N, 10) log-probabilities."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, images):
        hidden = F.relu(self.conv2(F.relu(self.conv1(images))))
        hidden = self.dropout1(F.max_pool2d(hidden, 2))
        hidden = F.relu(self.fc1(torch.flatten(hidden, 1)))
        return F.log_softmax(self.fc2(self.dropout2(hidden)), dim=1)


def train_one_epoch(model, device, loader, optimizer, epoch, log_every):
    model.train()
    for step, (images, labels) in enumerate(loader):
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(images), labels)
        loss.backward()
        optimizer.step()
        if step % log_every == 0:
            seen = step * len(images)
            share = 100.0 * step / len(loader)
            print(f"epoch {epoch} [{seen}/{len(loader.dataset)} ({share:.0f}%)] loss {loss.item():.6f}")


def evaluate(model, device, loader):
    """(mean loss, number correct) over the loader's dataset."""
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            log_probs = model(images)
            total_loss += F.nll_loss(log_probs, labels, reduction="sum").item()
            guess = log_probs.argmax(dim=1, keepdim=True)
            correct += guess.eq(labels.view_as(guess)).sum().item()
    count = len(loader.dataset)
    print(f"test: mean loss {total_loss / count:.4f}, accuracy {correct}/{count} ({100.0 * correct / count:.2f}%)")
    return total_loss / count, correct


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="MNIST with PyTorch's API")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.7)
    parser.add_argument("--no-accel", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--save-model", action="store_true")
    parser.add_argument("--limit-train", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--limit-test", type=int, default=None, help="test on the first N images only")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    use_accel = not args.no_accel and torch.accelerator.is_available()
    torch.manual_seed(args.seed)
    device = torch.accelerator.current_accelerator() if use_accel else torch.device("cpu")

    train_kwargs = {"batch_size": args.batch_size}
    test_kwargs = {"batch_size": args.test_batch_size}
    if use_accel:
        extra = {"num_workers": 1, "persistent_workers": True, "pin_memory": True, "shuffle": True}
        train_kwargs.update(extra)
        test_kwargs.update(extra)

    to_input = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = datasets.MNIST("../data", train=True, download=True, transform=to_input)
    test_set = datasets.MNIST("../data", train=False, transform=to_input)
    if args.limit_train is not None:
        train_set = Subset(train_set, range(args.limit_train))
    if args.limit_test is not None:
        test_set = Subset(test_set, range(args.limit_test))
    train_loader = DataLoader(train_set, **train_kwargs)
    test_loader = DataLoader(test_set, **test_kwargs)

    model = DigitClassifier().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        train_one_epoch(model, device, train_loader, optimizer, epoch, args.log_interval)
        test_loss, correct = evaluate(model, device, test_loader)
        scheduler.step()
    if args.save_model:
        torch.save(model.state_dict(), "mnist_cnn.pt")
    result = {
        "test_loss": test_loss,
        "correct": correct,
        "test_size": len(test_loader.dataset),
        "lr": optimizer.param_groups[0]["lr"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
