"""The seed's Xception-style landmark regressor (Chollet, "Xception", arXiv:1610.02357).

Exactly the layer table of ../shared/seed/face-landmarks-detection.md: an entry block to
256x32x32, six residual middle blocks of depthwise-separable convolutions, an exit block
to 1024 features, and a linear layer to 136 numbers (68 x, y). 2,630,888 parameters.
Trained with MSE on coordinates normalised to [-0.5, 0.5] of the crop.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Xception", "xception"]

SLOPE = 0.2


class DepthwiseSeparableConv2d(nn.Module):
    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_chs, in_chs, 3, padding=1, groups=in_chs, bias=False)
        self.pointwise = nn.Conv2d(in_chs, out_chs, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def _sep_bn(in_chs: int, out_chs: int, act_first: bool = True) -> list[nn.Module]:
    layers = [nn.LeakyReLU(SLOPE)] if act_first else []
    return layers + [DepthwiseSeparableConv2d(in_chs, out_chs), nn.BatchNorm2d(out_chs)]


class EntryBlock(nn.Module):
    def __init__(self, in_chans: int = 1):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_chans, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.LeakyReLU(SLOPE)
        )
        self.conv2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(SLOPE))
        self.conv3_residual = nn.Sequential(
            *_sep_bn(64, 64, act_first=False),
            nn.LeakyReLU(SLOPE),
            *_sep_bn(64, 128, act_first=False),
            nn.MaxPool2d(3, 2, 1),
        )
        self.conv3_direct = nn.Sequential(nn.Conv2d(64, 128, 1, stride=2), nn.BatchNorm2d(128))
        self.conv4_residual = nn.Sequential(*_sep_bn(128, 128), *_sep_bn(128, 256), nn.MaxPool2d(3, 2, 1))
        self.conv4_direct = nn.Sequential(nn.Conv2d(128, 256, 1, stride=2), nn.BatchNorm2d(256))

    def forward(self, x):
        x = self.conv2(self.conv1(x))
        x = self.conv3_residual(x) + self.conv3_direct(x)
        return self.conv4_residual(x) + self.conv4_direct(x)


class MiddleBasicBlock(nn.Module):
    def __init__(self, chs: int = 256):
        super().__init__()
        self.conv = nn.Sequential(*_sep_bn(chs, chs), *_sep_bn(chs, chs), *_sep_bn(chs, chs))

    def forward(self, x):
        return x + self.conv(x)


class MiddleBlock(nn.Module):
    def __init__(self, num_blocks: int = 6, chs: int = 256):
        super().__init__()
        self.blocks = nn.Sequential(*[MiddleBasicBlock(chs) for _ in range(num_blocks)])

    def forward(self, x):
        return self.blocks(x)


class ExitBlock(nn.Module):
    def __init__(self, drop_rate: float = 0.3):
        super().__init__()
        self.direct = nn.Sequential(nn.Conv2d(256, 512, 1, stride=2), nn.BatchNorm2d(512))
        self.residual = nn.Sequential(*_sep_bn(256, 256), *_sep_bn(256, 512), nn.MaxPool2d(3, 2, 1))
        self.conv = nn.Sequential(
            *_sep_bn(512, 512, act_first=False),
            nn.LeakyReLU(SLOPE),
            *_sep_bn(512, 1024, act_first=False),
            nn.LeakyReLU(SLOPE),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x):
        x = self.direct(x) + self.residual(x)
        return self.dropout(self.pool(self.conv(x)))


class Xception(nn.Module):
    """Direct regression of 68 (x, y) from a 1x128x128 grayscale crop in [0, 1]."""

    def __init__(self, in_chans: int = 1, num_points: int = 68, input_size: int = 128, drop_rate: float = 0.3):
        super().__init__()
        self.input_size = input_size
        self.num_points = num_points
        self.entry_block = EntryBlock(in_chans)
        self.middle_block = MiddleBlock()
        self.exit_block = ExitBlock(drop_rate)
        self.fc = nn.Linear(1024, num_points * 2)

    def forward_features(self, x):
        return self.exit_block(self.middle_block(self.entry_block(x)))

    def forward_head(self, x):
        return self.fc(x.flatten(1))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MSE on coordinates in [-0.5, 0.5] of the crop (the seed's objective); target in crop pixels."""
        return F.mse_loss(out.float().view_as(target), (target + 0.5) / self.input_size - 0.5)

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Raw outputs -> (B, 68, 2) crop pixel coordinates."""
        return (out.float().view(out.shape[0], self.num_points, 2) + 0.5) * self.input_size - 0.5


def xception(**kwargs) -> Xception:
    return Xception(**kwargs)
