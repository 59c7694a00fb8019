"""Export the small test models in this folder with PyTorch (run once by hand; tests never run it).

Each model carries the shape computations real exported detection, speech and OCR models
carry: dims read with ``Shape`` and combined with ``Gather``/``Slice``/``Concat``/
``Unsqueeze``, ``ConstantOfShape`` initial states, padding amounts built with ``Cast``,
``Transpose`` and ``Concat``, ``Range``/``Expand`` grids, and an ``If`` on a scalar input.
They are exported with the TorchScript exporter (``dynamo=False``), which is what most
models in the wild were made with, with symbolic dims named after what they mean.

Usage (from the repository root, in a virtual environment with ``torch==2.13.0``)::

    python tests/data/onnx/make_models.py tests/data/onnx

Weights are random (seed 0) and tiny: each file stays in the kilobytes. A YOLOv5s-sized
detector (about 28 MB, for timing the importer; not committed) comes from::

    python tests/data/onnx/make_models.py --detection-sized /tmp/yolo_like.onnx
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

OPSET = 17


class DetectLevel(nn.Module):
    """A YOLO-style detection level: raw map -> boxes in pixels, for any input size."""

    def __init__(self, channels: int, stride: int, anchors: list[tuple[float, float]]) -> None:
        super().__init__()
        self.stride = stride
        self.num_anchors = len(anchors)
        self.num_outputs = 4 + 1 + 2  # box, objectness, two classes
        self.conv = nn.Conv2d(channels, self.num_anchors * self.num_outputs, 1)
        self.register_buffer("anchors", torch.tensor(anchors).view(1, -1, 1, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        batch, _, ny, nx = x.shape
        x = x.view(batch, self.num_anchors, self.num_outputs, ny, nx).permute(0, 1, 3, 4, 2)
        yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()
        y = x.sigmoid()
        xy = (y[..., :2] * 2 - 0.5 + grid) * self.stride
        wh = (y[..., 2:4] * 2) ** 2 * self.anchors
        y = torch.cat((xy, wh, y[..., 4:]), -1)
        return y.reshape(batch, -1, self.num_outputs)


class TinyDetector(nn.Module):
    """Two conv stages and two detection levels over an input of any batch and size."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU())
        self.stage = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.SiLU())
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU())
        self.p3 = DetectLevel(16, 4, [(10.0, 13.0), (16.0, 30.0)])
        self.p4 = DetectLevel(16, 8, [(30.0, 61.0), (62.0, 45.0)])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c3 = self.stage(self.stem(images))
        c4 = self.down(c3)
        return torch.cat((self.p3(c3), self.p4(c4)), 1)


@torch.jit.script
def resample_to_16k(audio: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
    """Speech front ends branch on the sample rate (an ``If`` in ONNX)."""
    if bool(sr == 16000):  # noqa: SIM108 - an if statement, as in the front ends
        out = audio
    else:
        out = audio[:, ::2]
    return out


class LstmSpeech(nn.Module):
    """Framing, a conv subsampler, a 2-layer LSTM with explicit zero states, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.frame = 160
        self.proj = nn.Linear(self.frame, 16)
        self.subsample = nn.Conv1d(16, 16, 3, 2, 1)
        self.lstm = nn.LSTM(16, 16, num_layers=2, batch_first=True)
        self.classify = nn.Linear(16, 12)

    def forward(self, audio: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        audio = resample_to_16k(audio, sr)
        batch, samples = audio.shape
        frames = audio[:, : samples // self.frame * self.frame].reshape(batch, -1, self.frame)
        feats = torch.relu(self.proj(frames)).transpose(1, 2)
        feats = torch.relu(self.subsample(feats)).transpose(1, 2)
        h0 = torch.zeros(2, feats.shape[0], 16)
        c0 = torch.zeros(2, feats.shape[0], 16)
        out, _ = self.lstm(feats, (h0, c0))
        return self.classify(out).log_softmax(-1)


class TinyCrnn(nn.Module):
    """OCR recogniser: pad the width to a multiple of 4, conv, collapse height, BiLSTM, CTC head."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(4, 8, 3, 1, 1), nn.ReLU(), nn.MaxPool2d((2, 1), (2, 1)),
        )  # fmt: skip
        self.rnn = nn.LSTM(8 * 8, 16, bidirectional=True)
        self.ctc = nn.Linear(32, 37)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        width = image.shape[3]
        pad = (4 - width % 4) % 4
        image = F.pad(image, [0, pad, 0, 0])
        x = self.convs(image)
        batch, channels, height, steps = x.shape
        x = x.reshape(batch, channels * height, steps).permute(2, 0, 1)
        x, _ = self.rnn(x)
        return self.ctc(x).softmax(-1)


def conv(c_in: int, c_out: int, k: int = 1, s: int = 1) -> nn.Module:
    """Conv, batch norm (folded by the exporter) and SiLU, as in YOLOv5."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, s, (k - 1) // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.SiLU())  # fmt: skip


class C3(nn.Module):
    """YOLOv5's CSP block: two branches, ``n`` residual bottlenecks on one."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool = True) -> None:
        super().__init__()
        hidden = c_out // 2
        self.a, self.b, self.out = conv(c_in, hidden), conv(c_in, hidden), conv(2 * hidden, c_out)
        self.blocks = nn.ModuleList(
            nn.Sequential(conv(hidden, hidden), conv(hidden, hidden, 3)) for _ in range(n)
        )
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        for block in self.blocks:
            a = a + block(a) if self.shortcut else block(a)
        return self.out(torch.cat((a, self.b(x)), 1))


class YoloLike(nn.Module):
    """A YOLOv5s-sized detector (7 M weights): backbone, SPPF, PAN neck, three levels."""

    def __init__(self) -> None:
        super().__init__()
        w = [32, 64, 128, 256, 512]
        self.b1 = nn.Sequential(conv(3, w[0], 6, 2), conv(w[0], w[1], 3, 2), C3(w[1], w[1], 1))
        self.b2 = nn.Sequential(conv(w[1], w[2], 3, 2), C3(w[2], w[2], 2))
        self.b3 = nn.Sequential(conv(w[2], w[3], 3, 2), C3(w[3], w[3], 3))
        self.b4 = nn.Sequential(conv(w[3], w[4], 3, 2), C3(w[4], w[4], 1))
        self.sppf_in, self.sppf_out = conv(w[4], w[3]), conv(w[3] * 4, w[4])
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.lat4, self.td4 = conv(w[4], w[3]), C3(w[4], w[3], 1, False)
        self.lat3, self.td3 = conv(w[3], w[2]), C3(w[3], w[2], 1, False)
        self.dn3, self.bu4 = conv(w[2], w[2], 3, 2), C3(w[3], w[3], 1, False)
        self.dn4, self.bu5 = conv(w[3], w[3], 3, 2), C3(w[4], w[4], 1, False)
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        anchors = [[(10.0, 13.0), (16.0, 30.0), (33.0, 23.0)],
                   [(30.0, 61.0), (62.0, 45.0), (59.0, 119.0)],
                   [(116.0, 90.0), (156.0, 198.0), (373.0, 326.0)]]  # fmt: skip
        self.heads = nn.ModuleList(
            DetectLevel(c, s, a)
            for c, s, a in zip((w[2], w[3], w[4]), (8, 16, 32), anchors, strict=True)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c3 = self.b2(self.b1(images))
        c4 = self.b3(c3)
        x = self.sppf_in(self.b4(c4))
        p1 = self.pool(x)
        p2 = self.pool(p1)
        c5 = self.sppf_out(torch.cat((x, p1, p2, self.pool(p2)), 1))
        l4 = self.lat4(c5)
        t4 = self.td4(torch.cat((self.up(l4), c4), 1))
        l3 = self.lat3(t4)
        n3 = self.td3(torch.cat((self.up(l3), c3), 1))
        n4 = self.bu4(torch.cat((self.dn3(n3), l3), 1))
        n5 = self.bu5(torch.cat((self.dn4(n4), l4), 1))
        return torch.cat([h(x) for h, x in zip(self.heads, (n3, n4, n5), strict=True)], 1)


def export_detection_sized(path: Path) -> None:
    """Write the YOLOv5s-sized detector (about 28 MB: for timing only, never committed)."""
    torch.manual_seed(0)
    model = YoloLike().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(1, 3, 640, 640),), str(path), dynamo=False,
            opset_version=OPSET, input_names=["images"], output_names=["detections"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                          "detections": {0: "batch"}},
        )  # fmt: skip
    print(f"{path.name}: {path.stat().st_size:,} bytes")


def export_all(folder: Path) -> None:
    """Write the three models into ``folder``."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        (
            TinyDetector(),
            (torch.randn(1, 3, 64, 96),),
            "detector_head.onnx",
            ["images"],
            ["detections"],
            {"images": {0: "batch", 2: "height", 3: "width"}, "detections": {0: "batch"}},
        ),
        (
            LstmSpeech(),
            (torch.randn(1, 16000), torch.tensor(16000)),
            "lstm_speech.onnx",
            ["audio", "sr"],
            ["log_probs"],
            {"audio": {0: "batch", 1: "samples"}, "log_probs": {0: "batch", 1: "frames"}},
        ),
        (
            TinyCrnn(),
            (torch.randn(1, 3, 32, 100),),
            "ocr_crnn.onnx",
            ["image"],
            ["probs"],
            {"image": {0: "batch", 3: "width"}, "probs": {0: "steps", 1: "batch"}},
        ),
    ]
    for model, args, name, inputs, outputs, axes in jobs:
        model.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                args,
                str(folder / name),
                dynamo=False,
                opset_version=OPSET,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
            )
        print(f"{name}: {(folder / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--detection-sized":
        export_detection_sized(Path(sys.argv[2]))
    else:
        export_all(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
