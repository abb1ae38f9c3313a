#!/usr/bin/env python3
"""Generate the model zoo fixtures: small versions of every architecture family users bring.

Run from the repository root: ``python3 tools/make_zoo_fixtures.py [--probe build/src/cleval]``.
Writes to ``tests/fixtures/zoo/``; the C test (tests/test_nn_zoo.c) never runs Python, so
the outputs are committed.

Each family is built from torchvision's own classes and blocks with narrow widths and few
blocks (or, for the sequence models, from torch.nn), so that every ONNX file stays small
(under ~2 MB) while keeping the operator patterns of the full-size model. Each is exported
with ``torch.onnx.export(..., dynamo=False)`` and a dynamic batch axis:

* ``<family>_13`` and ``<family>_17``: weights perturbed (every parameter plus seeded noise,
  BatchNorm running statistics measured on random batches, then jittered), so that no two
  float initializers are equal and the exporter shares nothing;
* ``<family>_identity_17``: the model's own initialisation exported as is, where equal
  initializers (LayerNorm ones, zero biases...) are shared, some through Identity nodes;
* ``<family>_21`` for resnet_basic, mobilenet_v2, efficientnet and vit: the opset-17 file
  converted by onnx.version_converter (the dynamo exporter at 21 when that fails).

A family whose export fails at opset 13 (ViT and the transformer encoders: PyTorch emits
scaled-dot-product attention only from opset 14) is exported at 14 instead.

Each fixture ``<name>.onnx`` comes with ``<name>_io.h5`` holding ``X`` (5 seeded samples in
the model's input type: float32, int64 tokens or uint8 NHWC pixels), ``scores`` (float32,
onnxruntime's output on X) and ``y`` (int64, onnxruntime's argmax). 5 samples let the test
run a full batch and batches of 2 and 3 that leave a partial last batch.

``manifest.txt`` lists each fixture: ``name family opset weights expect``, where ``expect``
is ``run`` (cleval must agree with onnxruntime) or ``refuse`` (cleval must refuse it with a
message naming the node). With ``--probe <cleval binary>`` a fixture is marked ``run`` when
``cleval eval`` accepts it and ``refuse`` otherwise; without it, the ``expect`` of an
existing manifest is kept (new lines get ``refuse``).

Everything is deterministic: each family is built after torch.manual_seed(<its own seed>),
and its inputs come from a NumPy generator with a fixed seed.
"""

import argparse
import subprocess
import sys
import warnings
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torchvision.models.inception as tv_inception
from torchvision.models import mobilenetv3 as tv_mobilenetv3
from torchvision.models import (
    ConvNeXt,
    DenseNet,
    EfficientNet,
    GoogLeNet,
    Inception3,
    MNASNet,
    MobileNetV2,
    RegNet,
    ShuffleNetV2,
    SwinTransformer,
    VisionTransformer,
)
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.efficientnet import _efficientnet_conf
from torchvision.models.googlenet import BasicConv2d as GoogLeNetConv
from torchvision.models.googlenet import Inception as GoogLeNetInception
from torchvision.models.googlenet import InceptionAux as GoogLeNetAux
from torchvision.models.regnet import BlockParams
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.squeezenet import Fire
from torchvision.models.vgg import VGG, make_layers

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "zoo"
SAMPLES = 5
CLASSES = 10
OPSETS = (13, 17)
IDENTITY_OPSET = 17
CONVERTED_OPSET = 21
CONVERTED = ("resnet_basic", "mobilenet_v2", "efficientnet", "vit")


# ---- narrow versions of the torchvision families ----


class NarrowResNet(ResNet):
    """torchvision's ResNet with the stage widths as a parameter (torchvision fixes 64..512)."""

    def __init__(self, block, layers, planes, groups=1, width_per_group=64):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = planes[0]
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, CLASSES)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def scaled_conv(block, divisor):
    """A conv_block factory for torchvision's Inception/GoogLeNet blocks that divides every
    channel count by `divisor` (the RGB input stays 3), so their fixed widths shrink while
    the topology and the concatenations stay the same."""

    def make(cin, cout, **kwargs):
        return block(cin if cin == 3 else cin // divisor, cout // divisor, **kwargs)

    return make


def small_googlenet():
    conv = scaled_conv(GoogLeNetConv, 8)
    blocks = [conv, partial(GoogLeNetInception, conv_block=conv), GoogLeNetAux]
    m = GoogLeNet(num_classes=CLASSES, aux_logits=False, init_weights=True, blocks=blocks)
    m.fc = nn.Linear(1024 // 8, CLASSES)
    return m


def small_inception_v3():
    conv = scaled_conv(tv_inception.BasicConv2d, 8)
    blocks = [conv] + [
        partial(b, conv_block=conv)
        for b in (
            tv_inception.InceptionA,
            tv_inception.InceptionB,
            tv_inception.InceptionC,
            tv_inception.InceptionD,
            tv_inception.InceptionE,
        )
    ]
    blocks.append(tv_inception.InceptionAux)
    m = Inception3(num_classes=CLASSES, aux_logits=False, init_weights=True, inception_blocks=blocks)
    m.fc = nn.Linear(2048 // 8, CLASSES)
    return m


def small_mobilenet_v3(arch, blocks):
    setting, last = tv_mobilenetv3._mobilenet_v3_conf(arch, width_mult=0.25)
    return tv_mobilenetv3.MobileNetV3(setting[:blocks], last, num_classes=CLASSES)


def small_efficientnet():
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return EfficientNet(setting, dropout=0.2, stochastic_depth_prob=0.2, num_classes=CLASSES,
                        last_channel=last)


def small_squeezenet():
    """squeezenet1_1's layout (ceil-mode max-pools, Fire modules, a Conv classifier)."""

    class SmallSqueezeNet(nn.Module):
        def __init__(self):
            super().__init__()
            pool = partial(nn.MaxPool2d, kernel_size=3, stride=2, ceil_mode=True)
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, kernel_size=3, stride=2), nn.ReLU(inplace=True), pool(),
                Fire(16, 4, 8, 8), Fire(16, 4, 8, 8), pool(),
                Fire(16, 8, 16, 16), Fire(32, 8, 16, 16), pool(),
                Fire(32, 12, 24, 24), Fire(48, 16, 32, 32))
            self.classifier = nn.Sequential(
                nn.Dropout(p=0.5), nn.Conv2d(64, CLASSES, kernel_size=1), nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d((1, 1)))

        def forward(self, x):
            return torch.flatten(self.classifier(self.features(x)), 1)

    return SmallSqueezeNet()


def small_alexnet():
    """torchvision AlexNet's layout with narrow widths; at 63x63 the last feature map is 1x1,
    so the adaptive pool keeps it as is, as the full model's does at 224x224 (6x6)."""

    class SmallAlexNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(16, 32, kernel_size=5, padding=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(32, 48, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(48, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier = nn.Sequential(
                nn.Dropout(p=0.5), nn.Linear(32, 64), nn.ReLU(inplace=True),
                nn.Dropout(p=0.5), nn.Linear(64, 64), nn.ReLU(inplace=True),
                nn.Linear(64, CLASSES))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return SmallAlexNet()


def small_vgg(batch_norm):
    """torchvision's VGG with a short cfg; three pools take 56x56 to VGG's 7x7, so its adaptive
    pool keeps the map as is (as at 224x224); the 4096-wide classifier is narrowed."""
    m = VGG(make_layers([8, "M", 16, "M", 16, 16, "M"], batch_norm=batch_norm),
            num_classes=CLASSES)
    m.classifier = nn.Sequential(
        nn.Linear(16 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(),
        nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, CLASSES))
    return m


# ---- sequence models and other classifiers ----


class EncoderClassifier(nn.Module):
    """nn.TransformerEncoder over [N, T, D] features, mean over time, a linear head. Without
    batch_first the sequence is moved to [T, N, D] for the encoder, as such models do."""

    def __init__(self, batch_first, norm_first, activation):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.1,
                                           activation=activation, batch_first=batch_first,
                                           norm_first=norm_first)
        self.batch_first = batch_first
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        if self.batch_first:
            h = self.encoder(x).mean(dim=1)
        else:
            h = self.encoder(x.transpose(0, 1)).mean(dim=0)
        return self.head(h)


class LSTMText(nn.Module):
    """int64 tokens -> Embedding -> LSTM -> Linear on the last hidden state."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.lstm = nn.LSTM(16, 24, batch_first=True)
        self.head = nn.Linear(24, 4)

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embed(tokens))
        return self.head(h[-1])


class GRUSequence(nn.Module):
    """float features [N, T, F] -> 2-layer GRU -> Linear on the last time step's output."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 16, num_layers=2, batch_first=True)
        self.head = nn.Linear(16, 6)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def cnn1d():
    return nn.Sequential(
        nn.Conv1d(4, 16, kernel_size=5), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, kernel_size=3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        nn.Flatten(), nn.Linear(32, 6))


def mlp_bn():
    return nn.Sequential(
        nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32), nn.BatchNorm1d(32),
        nn.ReLU(), nn.Linear(32, 5))


class Uint8ResNet(nn.Module):
    """A narrow ResNet behind its own preprocessing: uint8 NHWC pixels are cast, moved to
    NCHW, scaled to [0, 1] and normalised with the ImageNet mean and std."""

    def __init__(self):
        super().__init__()
        self.net = NarrowResNet(BasicBlock, [1, 1, 1, 1], (8, 16, 24, 32))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        x = x.to(torch.float32).permute(0, 3, 1, 2) / 255.0
        return self.net((x - self.mean) / self.std)


# ---- the families: name -> (builder, seed, input maker) ----


def images(size):
    return lambda rng: rng.standard_normal((SAMPLES, 3, size, size), dtype=np.float32)


def features(*shape):
    return lambda rng: rng.standard_normal((SAMPLES,) + shape, dtype=np.float32)


FAMILIES = {
    "resnet_basic": (lambda: NarrowResNet(BasicBlock, [2, 1, 1, 1], (8, 16, 32, 48)), images(32)),
    "resnet_bottleneck": (lambda: NarrowResNet(Bottleneck, [1, 1, 2, 1], (8, 16, 24, 32),
                                               groups=2, width_per_group=32), images(32)),
    "mobilenet_v2": (lambda: MobileNetV2(num_classes=CLASSES, inverted_residual_setting=[
        [1, 8, 1, 1], [6, 12, 2, 2], [6, 16, 2, 2], [6, 24, 1, 2]]), images(32)),
    "mobilenet_v3_small": (lambda: small_mobilenet_v3("mobilenet_v3_small", 6), images(32)),
    "mobilenet_v3_large": (lambda: small_mobilenet_v3("mobilenet_v3_large", 8), images(32)),
    "efficientnet": (small_efficientnet, images(32)),
    "squeezenet": (small_squeezenet, images(48)),
    "shufflenet_v2": (lambda: ShuffleNetV2([1, 2, 1], [8, 16, 32, 48, 64], num_classes=CLASSES),
                      images(32)),
    "densenet": (lambda: DenseNet(growth_rate=8, block_config=(2, 3, 2), num_init_features=16,
                                  bn_size=2, num_classes=CLASSES), images(32)),
    "googlenet": (small_googlenet, images(48)),
    "inception_v3": (small_inception_v3, images(75)),
    "regnet_y": (lambda: RegNet(BlockParams.from_init_params(depth=4, w_0=8, w_a=4.0, w_m=2.0,
                                                             group_width=4, se_ratio=0.25),
                                num_classes=CLASSES, stem_width=8), images(32)),
    "mnasnet": (lambda: MNASNet(alpha=0.25, num_classes=CLASSES), images(32)),
    "convnext": (lambda: ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, 48, 2),
                                   CNBlockConfig(48, None, 1)], stochastic_depth_prob=0.1,
                                  num_classes=CLASSES), images(32)),
    "vit": (lambda: VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                      hidden_dim=32, mlp_dim=64, num_classes=CLASSES), images(32)),
    "swin": (lambda: SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2],
                                     num_heads=[2, 4], window_size=[4, 4],
                                     num_classes=CLASSES), images(32)),
    "alexnet": (small_alexnet, images(63)),
    "vgg": (lambda: small_vgg(False), images(56)),
    "vgg_bn": (lambda: small_vgg(True), images(56)),
    "transformer_batch_first": (lambda: EncoderClassifier(True, True, "gelu"), features(7, 16)),
    "transformer_seq_first": (lambda: EncoderClassifier(False, False, "relu"), features(7, 16)),
    "lstm_text": (LSTMText, lambda rng: rng.integers(0, 50, (SAMPLES, 9), dtype=np.int64)),
    "gru_sequence": (GRUSequence, features(11, 8)),
    "cnn1d": (cnn1d, features(4, 50)),
    "mlp_bn": (mlp_bn, features(20)),
    "resnet_uint8": (Uint8ResNet,
                     lambda rng: rng.integers(0, 256, (SAMPLES, 32, 32, 3), dtype=np.uint8)),
}


# ---- weights ----


def calibrate_batchnorm(model, make_input, rng):
    """Running statistics measured on a few random batches (cumulative averages), so that the
    normalisation is neither the identity nor blows activations up."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.from_numpy(np.concatenate([make_input(rng) for _ in range(4)])))
    model.eval()


def perturb(model, make_input, seed):
    """Seeded noise on every parameter and float buffer, so that no two tensors are equal."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed + 1000)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    calibrate_batchnorm(model, make_input, rng)
    with torch.no_grad():
        for b in model.buffers():
            if b.dtype.is_floating_point:
                b.add_(1e-3 * torch.rand(b.shape, generator=gen))


def duplicated_initializers(path):
    """Names of float initializers (more than one element) equal to an earlier one."""
    seen, dups = {}, []
    for init in onnx.load(path).graph.initializer:
        a = onnx.numpy_helper.to_array(init)
        if a.dtype.kind != "f" or a.size < 2:
            continue
        key = (a.shape, a.tobytes())
        if key in seen:
            dups.append(init.name)
        seen[key] = init.name
    return dups


# ---- export and reference outputs ----


def export(model, x, path, opset):
    torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=opset,
                      dynamo=False)


def export_first_working(model, x, path, opset):
    """Exports at `opset`, or at 14 when `opset` is 13 and the exporter needs 14 (attention)."""
    try:
        export(model, x, path, opset)
        return opset
    except Exception as e:  # the exporter raises several unrelated types
        if opset != 13:
            raise
        print(f"  {path.name}: opset 13 failed ({type(e).__name__}), exporting at 14")
        export(model, x, path, 14)
        return 14


def convert(model, x, src, path, opset):
    """The opset-17 file converted to `opset`; the dynamo exporter when conversion fails."""
    try:
        converted = onnx.version_converter.convert_version(onnx.load(str(src)), opset)
        onnx.checker.check_model(converted)
        onnx.save(converted, str(path))
        return
    except Exception as e:
        print(f"  {path.name}: version converter failed ({e!s:.120}), using the dynamo exporter")
        batch = torch.export.Dim("n", min=1)
        program = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset,
                                    input_names=["x"], output_names=["y"],
                                    dynamic_shapes={"x": {0: batch}}, external_data=False)
        program.save(str(path))


def write_io(model_path, io_path, x):
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    scores = session.run(None, {session.get_inputs()[0].name: x})[0].astype(np.float32)
    if not np.all(np.isfinite(scores)):
        sys.exit(f"{model_path.name}: onnxruntime gives non-finite scores")
    with h5py.File(io_path, "w") as h:
        h["X"] = x
        h["scores"] = scores
        h["y"] = scores.argmax(axis=1).astype(np.int64)
    return scores


def check_against_torch(name, model, x, scores):
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    err = np.abs(want - scores).max() / max(np.abs(want).max(), 1e-30)
    if err > 1e-4:
        sys.exit(f"{name}: onnxruntime and PyTorch differ by {err:.3g} (relative)")


def export_variant(family, weights, model, tx):
    """Exports one weights variant of a family; returns [(path, opset, how it was made)]."""
    prefix = family if weights == "perturbed" else f"{family}_identity"
    made = []
    for opset in OPSETS if weights == "perturbed" else (IDENTITY_OPSET,):
        path = OUT / f"{prefix}_{opset}.onnx"
        got = export_first_working(model, tx, path, opset)
        if got != opset:
            path = path.rename(OUT / f"{prefix}_{got}.onnx")
        made.append((path, got))
    if weights == "perturbed" and family in CONVERTED:
        path = OUT / f"{prefix}_{CONVERTED_OPSET}.onnx"
        convert(model, tx, OUT / f"{prefix}_17.onnx", path, CONVERTED_OPSET)
        made.append((path, CONVERTED_OPSET))
    return made


def make_family(family, builder, make_input, seed):
    """Exports every fixture of one family; returns its manifest rows (name, opset, weights)."""
    rows = []
    x = make_input(np.random.default_rng(seed))
    for weights in ("identity", "perturbed"):
        torch.manual_seed(seed)
        model = builder().eval()
        if weights == "perturbed":
            perturb(model, make_input, seed)
        for path, opset in export_variant(family, weights, model, torch.from_numpy(x)):
            scores = write_io(path, OUT / f"{path.stem}_io.h5", x)
            check_against_torch(path.stem, model, x, scores)
            if weights == "perturbed" and (dups := duplicated_initializers(path)):
                sys.exit(f"{path.name}: equal initializers {dups[:4]}")
            rows.append((path.stem, opset, weights))
    return rows


# ---- manifest ----


def probe(cleval, name):
    """run when `cleval eval` accepts the fixture, refuse otherwise."""
    r = subprocess.run([cleval, "eval", "--model", str(OUT / f"{name}.onnx"), "--data",
                        str(OUT / f"{name}_io.h5"), "--quiet"], capture_output=True, text=True)
    return "run" if r.returncode == 0 else "refuse"


def previous_expectations():
    path = OUT / "manifest.txt"
    if not path.exists():
        return {}
    rows = [line.split() for line in path.read_text().splitlines()]
    return {r[0]: r[4] for r in rows if r and not r[0].startswith("#")}


def write_manifest(rows, cleval):
    before = previous_expectations()
    lines = [
        "# The model zoo fixtures (tools/make_zoo_fixtures.py), run by tests/test_nn_zoo.c.",
        "# name: <name>.onnx and <name>_io.h5 in this folder; weights: perturbed (no two",
        "# initializers equal) or identity (the model's own initialisation);",
        "# expect: run (must agree with onnxruntime) or refuse (must be refused, naming a node).",
        "# name family opset weights expect",
    ]
    for name, family, opset, weights in rows:
        expect = probe(cleval, name) if cleval else before.get(name, "refuse")
        lines.append(f"{name} {family} {opset} {weights} {expect}")
    (OUT / "manifest.txt").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probe", metavar="CLEVAL", help="set expect by running this cleval")
    parser.add_argument("--families", help="comma-separated subset (default: all)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    OUT.mkdir(parents=True, exist_ok=True)
    chosen = args.families.split(",") if args.families else list(FAMILIES)
    rows = []
    for seed, family in enumerate(FAMILIES):
        if family not in chosen:
            continue
        builder, make_input = FAMILIES[family]
        print(family, flush=True)
        for name, opset, weights in make_family(family, builder, make_input, 100 + seed):
            rows.append((name, family, opset, weights))
    if not args.families:
        write_manifest(rows, args.probe)
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"{len(rows)} fixtures, {total / 1e6:.1f} MB in {OUT}")


if __name__ == "__main__":
    main()
