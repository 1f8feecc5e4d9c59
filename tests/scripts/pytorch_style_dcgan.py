"""A small DCGAN in the style of pytorch/examples, for tinygrad_cnn's tests.

Our own script (fetched code stays out of the repository), exercising the API surface of
pytorch/examples ``dcgan/main.py``, which it was checked against: a generator of ``ConvTranspose2d``
layers (``bias=False``) with ``BatchNorm2d`` and ``ReLU(True)`` ending in ``Tanh``, a discriminator of
strided ``Conv2d`` layers with ``LeakyReLU(0.2, inplace=True)`` ending in ``Sigmoid`` and
``.view(-1, 1).squeeze(1)``, both initialised by ``model.apply(weights_init)`` picking layers by class
name, ``BCELoss``, two ``Adam`` optimizers with ``betas=(0.5, 0.999)``, labels made with ``torch.full``
and ``fill_``, the discriminator trained on ``fake.detach()``, and state_dicts saved with
``torch.save``. The generator here makes 28x28 MNIST digits (torchvision's MNIST with ``ToTensor``
and ``Normalize``), one of its ``ConvTranspose2d`` layers called with ``output_size``.

The weights and the noise come from formulas, not from a random generator, and nothing is shuffled,
so PyTorch and tinygrad_cnn compute the same numbers: the last line, ``RESULT {json}``, is compared
between the two by tests/test_pytorch_scripts.py.
"""

import json
import math
import os
import tempfile

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

nz, ngf, ndf, batch_size = 8, 16, 8, 16


def weights_init(m):
    """As dcgan/main.py, but N(0, 0.02) (and N(1, 0.02) for batch norm) replaced by a formula."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1 or classname.find("BatchNorm") != -1:
        n = m.weight.numel()
        wave = 0.02 * torch.sin(torch.arange(n, dtype=torch.float32) * 1.3 + n).reshape(m.weight.shape)
        with torch.no_grad():
            m.weight.copy_(wave + (1.0 if classname.find("BatchNorm") != -1 else 0.0))
    if classname.find("BatchNorm") != -1:
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.project = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 7, 1, 0, bias=False),  # 1x1 -> 7x7
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
        )
        self.up = nn.ConvTranspose2d(ngf * 2, ngf, 3, 2, 1, bias=False)  # 7x7 -> 13x13, or 14x14 by output_size
        self.main = nn.Sequential(
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),  # 14x14 -> 28x28
            nn.Tanh(),
        )

    def forward(self, input):
        x = self.project(input)
        return self.main(self.up(x, output_size=[x.size(0), ngf, 14, 14]))


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False),  # 28 -> 14
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),  # 14 -> 7
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False),  # 7 -> 1
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


def noise(count, step):
    return torch.sin(torch.arange(count * nz, dtype=torch.float32) * 0.7 + step).reshape(count, nz, 1, 1)


def main():
    dataset = datasets.MNIST(
        "data",
        train=True,
        download=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]),
    )
    loader = DataLoader(Subset(dataset, range(4 * batch_size)), batch_size=batch_size, shuffle=False)
    netG, netD = Generator(), Discriminator()
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    real_label, fake_label = 1.0, 0.0
    history = []
    for i, data in enumerate(loader):
        netD.zero_grad()
        real = data[0]
        b = real.size(0)
        label = torch.full((b,), real_label, dtype=real.dtype)
        output = netD(real)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        fake = netG(noise(b, i))
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        print(f"[{i}/{len(loader)}] Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f}", end=" ")
        print(f"D(x): {D_x:.4f} D(G(z)): {D_G_z1:.4f} / {D_G_z2:.4f}")
        history.append([errD.item(), errG.item(), D_x, D_G_z1, D_G_z2])
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(netG.state_dict(), os.path.join(tmp, "netG.pth"))
        state = torch.load(os.path.join(tmp, "netG.pth"), weights_only=True)
    sample = netG(noise(2, 0)).detach()
    result = {
        "history": history,
        "fake_shape": list(fake.shape),
        "state": {k: list(v.shape) for k, v in state.items()},
        "sample_mean": sample.mean().item(),
        "sample_range": [sample.min().item(), sample.max().item()],
        "finite": all(math.isfinite(v) for row in history for v in row),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
