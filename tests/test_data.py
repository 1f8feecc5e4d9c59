"""tinygrad_cnn.utils.data (datasets, samplers, DataLoader, collation), datasets.MNIST and
transforms, as PyTorch and torchvision define them; compared with torch.utils.data when installed."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import datasets, transforms
from tinygrad_cnn.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    random_split,
)


class Squares(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"x": np.array([i, i * i], dtype=np.float32), "y": i, "name": f"n{i}"}


def test_dataloader_batches_a_dataset_like_pytorch():
    loader = DataLoader(Squares(), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    first = batches[0]
    assert isinstance(first["x"], tg.Tensor) and first["x"].shape == (4, 2) and first["x"].dtype == np.float32
    assert first["y"].dtype == np.int64 and first["y"].tolist() == [0, 1, 2, 3]
    assert first["name"] == ["n0", "n1", "n2", "n3"]
    assert batches[-1]["y"].tolist() == [8, 9]
    assert len(DataLoader(Squares(), batch_size=4, drop_last=True)) == 2
    assert [b["y"] for b in DataLoader(Squares(), batch_size=None)][:2] == [0, 1]  # samples, not batches


def test_tensor_dataset_subset_concat_and_random_split():
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    ds = TensorDataset(x, y)
    assert len(ds) == 10 and ds[3][1].item() == 3
    xb, yb = next(iter(DataLoader(ds, batch_size=3)))
    np.testing.assert_array_equal(xb.data, x[:3])
    sub = Subset(ds, [9, 0])
    assert [int(s[1].item()) for s in sub] == [9, 0]
    both = ConcatDataset([sub, ds])
    assert len(both) == 12 and both[2][1].item() == 0 and both[-1][1].item() == 9
    parts = random_split(ds, [0.5, 0.3, 0.2], generator=tg.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [5, 3, 2]
    assert sorted(i for p in parts for i in p.indices) == list(range(10))
    again = random_split(ds, [5, 3, 2], generator=tg.Generator().manual_seed(0))
    assert [p.indices for p in parts] == [p.indices for p in again]
    with pytest.raises(ValueError, match="sum of input lengths"):
        random_split(ds, [5, 6])
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(x, y[:3])


def test_shuffle_is_a_permutation_seeded_by_the_generator_or_manual_seed():
    ds = TensorDataset(np.arange(50))
    order = lambda **kw: np.concatenate([b[0].data for b in DataLoader(ds, batch_size=8, shuffle=True, **kw)])  # noqa: E731
    first = order(generator=tg.Generator().manual_seed(3))
    assert sorted(first.tolist()) == list(range(50)) and first.tolist() != list(range(50))
    assert sorted(order(generator=np.random.default_rng(0)).tolist()) == list(range(50))  # NumPy's works too
    np.testing.assert_array_equal(first, order(generator=tg.Generator().manual_seed(3)))
    tg.manual_seed(1)
    a = order()
    tg.manual_seed(1)
    np.testing.assert_array_equal(a, order())
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    assert not np.array_equal(np.concatenate([b[0].data for b in loader]), np.concatenate([b[0].data for b in loader]))


def test_samplers():
    data = list(range(7))
    assert list(SequentialSampler(data)) == data
    g = tg.Generator().manual_seed(0)
    assert sorted(RandomSampler(data, generator=g)) == data
    assert len(list(RandomSampler(data, replacement=True, num_samples=20, generator=g))) == 20
    assert len(list(RandomSampler(data, num_samples=10, generator=g))) == 10
    assert sorted(SubsetRandomSampler([5, 1, 3], generator=g)) == [1, 3, 5]
    draws = list(WeightedRandomSampler([0.0, 1.0, 0.0], 5, generator=g))
    assert draws == [1] * 5
    assert list(BatchSampler(SequentialSampler(data), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(BatchSampler(data, 3, drop_last=True)) == 2

    class Evens(Sampler):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(0, self.n, 2))

        def __len__(self):
            return (self.n + 1) // 2

    loader = DataLoader(TensorDataset(np.arange(10)), batch_size=2, sampler=Evens(10))
    assert [b[0].tolist() for b in loader] == [[0, 2], [4, 6], [8]]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(TensorDataset(np.arange(10)), sampler=Evens(10), shuffle=True)
    batches = DataLoader(TensorDataset(np.arange(6)), batch_sampler=[[5, 0], [1]])
    assert [b[0].tolist() for b in batches] == [[5, 0], [1]]


def test_iterable_dataset_and_collate_fn_and_ignored_worker_options():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(np.arange(5, dtype=np.float32).reshape(5, 1))

    batches = list(DataLoader(Stream(), batch_size=2, num_workers=4, pin_memory=True, persistent_workers=True))
    assert [b.shape for b in batches] == [(2, 1), (2, 1), (1, 1)]
    loader = DataLoader(Squares(), batch_size=3, collate_fn=lambda samples: [s["y"] for s in samples])
    assert next(iter(loader)) == [0, 1, 2]


def test_default_collate_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    Point = namedtuple("Point", "a b")
    cases = [
        [1, 2, 3],
        [1.5, 2.5],
        [True, False],
        [np.float32(1.5), np.float32(2.0)],
        [np.ones((2, 3), dtype=np.float32), np.zeros((2, 3), dtype=np.float32)],
        [(np.int64(1), 2.0), (np.int64(3), 4.0)],
        [Point(1, np.ones(2)), Point(2, np.zeros(2))],
        [{"k": 1, "s": "a"}, {"k": 2, "s": "b"}],
    ]

    def flat(v):
        if isinstance(v, (tg.Tensor, torch.Tensor)):
            return [(v.numpy().tolist(), str(v.numpy().dtype))]
        if isinstance(v, dict):
            return [(k, flat(x)) for k, x in v.items()]
        if isinstance(v, (list, tuple)):
            return [type(v).__name__ if hasattr(v, "_fields") else "seq"] + [flat(x) for x in v]
        return [v]

    for batch in cases:
        assert flat(default_collate(batch)) == flat(torch_collate(batch)), batch


def test_dataloader_matches_torch_over_a_tensor_dataset():
    torch = pytest.importorskip("torch")
    x, y = np.random.default_rng(0).random((23, 3)).astype(np.float32), np.arange(23)
    ours = [(a.data, b.data) for a, b in DataLoader(TensorDataset(x, y), batch_size=5, drop_last=True)]
    theirs = [
        (a.numpy(), b.numpy())
        for a, b in torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=5, drop_last=True
        )
    ]
    assert len(ours) == len(theirs) == 4
    for (a, b), (ta, tb) in zip(ours, theirs):
        np.testing.assert_array_equal(a, ta)
        np.testing.assert_array_equal(b, tb)
    lengths = [len(p) for p in random_split(TensorDataset(x), [0.3, 0.3, 0.4])]
    assert lengths == [len(p) for p in torch.utils.data.random_split(range(23), [0.3, 0.3, 0.4])]


def test_mnist_dataset_and_transforms():
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    test_set = datasets.MNIST("no/such/root", train=False, download=True, transform=transform)
    assert len(test_set) == 10000 and test_set.data.shape == (10000, 28, 28) and test_set.targets.dtype == np.int64
    image, label = test_set[0]
    raw = test_set.data.data[0]
    assert isinstance(label, int) and label == int(test_set.targets.data[0]) == 7
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    np.testing.assert_allclose(
        image.data[0], (raw / np.float32(255) - np.float32(0.1307)) / np.float32(0.3081), rtol=1e-5
    )
    plain, _ = datasets.MNIST(".", train=False)[0]
    assert plain.dtype == np.uint8 and plain.shape == (28, 28)
    assert transforms.Lambda(lambda t: t * 2)(3) == 6
    assert transforms.ToTensor()(np.zeros((4, 5, 3), dtype=np.uint8)).shape == (3, 4, 5)


def test_mnist_reads_idx_files_under_root(tmp_path):
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist()
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)

    def write(name, magic, arr):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
        (raw / name).write_bytes(header + arr.astype(np.uint8).tobytes())

    write("train-images-idx3-ubyte", 0x803, x_train[:30])
    write("train-labels-idx1-ubyte", 0x801, y_train[:30])
    write("t10k-images-idx3-ubyte", 0x803, x_test[:20])
    write("t10k-labels-idx1-ubyte", 0x801, y_test[:20])
    assert len(datasets.MNIST(tmp_path)) == 30 and len(datasets.MNIST(tmp_path, train=False)) == 20
