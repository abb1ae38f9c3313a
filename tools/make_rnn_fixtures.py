#!/usr/bin/env python3
"""Generate the LSTM / GRU fixtures of tests/test_nn_rnn.c from PyTorch exports.

Run from the repository root: ``python3 tools/make_rnn_fixtures.py``. Writes to
``tests/fixtures/rnn/``; the C tests never run Python, so the outputs are committed.

Each model is a tiny ``nn.LSTM`` or ``nn.GRU`` (input 5, hidden 7, two layers; sequence 4,
batch 3), one-directional or bidirectional, with or without initial states, exported by
``torch.onnx.export`` at opset 17: the TorchScript exporter (``dynamo=False``) for every
combination, and the dynamo exporter for the bidirectional models without initial states
(its nodes spell out direction, layout and input_forget, and take zero initial states as
constants). The exported graph wraps the recurrent nodes in Shape / Expand / Slice / Squeeze /
Transpose nodes, so every LSTM or GRU node is cut out into a single-node model of its own:

* ``<case>.onnx``: the node as exported (attributes and weights untouched; the weights renamed
  W, R, B), its outputs renamed Y, Y_h (and Y_c). Its data input is graph input ``X``; initial
  states that the export computes from the model's inputs become graph inputs ``initial_h`` /
  ``initial_c``, those it computes as zeros (no initial state given) are dropped, constants
  stay initializers.
* group ``<case>`` of ``rnn_io.h5``: one float32 dataset per graph input and output, by name,
  with its shape. The inputs are what onnxruntime computes for the node inside the whole
  exported model; the outputs are onnxruntime's on the single-node model, checked to agree
  with the same node inside the whole model within 1e-5, whose outputs are in turn checked
  against PyTorch's.

Case names: ``<lstm|gru>_<uni|bi>_<init|noinit>[_dynamo]_layer<0|1>``. Models with initial
states are exported with batch_first=True (their first node reads the transposed input).
"""

import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from onnx import TensorProto, helper

OUT_DIR = Path("tests/fixtures/rnn")
INPUT, HIDDEN, SEQ, BATCH, LAYERS = 5, 7, 4, 3, 2
OPSET = 17
TOLERANCE = 1e-5


class Recurrent(nn.Module):
    def __init__(self, cell, bidirectional, batch_first, initial):
        super().__init__()
        self.rnn = cell(INPUT, HIDDEN, num_layers=LAYERS, bidirectional=bidirectional,
                        batch_first=batch_first)
        self.initial = initial

    def forward(self, x, *states):
        if not self.initial:
            y, last = self.rnn(x)
        else:
            y, last = self.rnn(x, states if len(states) > 1 else states[0])
        return (y,) + (tuple(last) if isinstance(last, tuple) else (last,))


def export(model, args, dynamo):
    names = ["x", "h0", "c0"][:len(args)]
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(folder) / "model.onnx"
        torch.onnx.export(model, args, str(path), dynamo=dynamo, opset_version=OPSET,
                          input_names=names)
        return onnx.load(str(path)), names


def run_ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def with_all_rnn_values(model):
    """The model with every recurrent node's inputs and outputs as graph outputs."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    known = {o.name for o in m.graph.output} | {i.name for i in m.graph.input}
    known |= {t.name for t in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type not in ("LSTM", "GRU"):
            continue
        for name in list(node.input) + list(node.output):
            if name and name not in known:
                m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
                known.add(name)
    return m


def constant_of(model, name):
    for t in model.graph.initializer:
        if t.name == name:
            return t
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return node.attribute[0].t
    return None


def cut_node(model, node, values, feeds, initial):
    """A single-node model of `node`, its input feeds and its outputs (onnxruntime)."""
    inputs, initializers, graph_inputs, io = [], [], [], {}
    weight_names = {1: "W", 2: "R", 3: "B", 7: "P"}
    for i, name in enumerate(node.input):
        if not name:
            inputs.append("")
            continue
        const = constant_of(model, name)
        if i in weight_names and const is not None:
            t = onnx.TensorProto()
            t.CopyFrom(const)
            t.name = weight_names[i]
            initializers.append(t)
            inputs.append(t.name)
            continue
        if i in (5, 6) and const is not None:
            t = onnx.TensorProto()
            t.CopyFrom(const)
            t.name = "initial_h" if i == 5 else "initial_c"
            initializers.append(t)
            inputs.append(t.name)
            continue
        if i in (5, 6) and not initial:
            inputs.append("")  # zeros computed by the export: the same as no initial state
            continue
        new = {0: "X", 5: "initial_h", 6: "initial_c"}[i]
        value = feeds[name] if name in feeds else values[name]
        io[new] = np.asarray(value, dtype=np.float32)
        graph_inputs.append(helper.make_tensor_value_info(new, TensorProto.FLOAT,
                                                          list(value.shape)))
        inputs.append(new)
    outputs = ["Y", "Y_h", "Y_c"][:len(node.output)]
    cut = helper.make_node(node.op_type, inputs, outputs, name=node.name)
    cut.attribute.extend(node.attribute)
    graph = helper.make_graph(
        [cut], node.op_type.lower(), graph_inputs,
        [helper.make_tensor_value_info(new, TensorProto.FLOAT, list(values[old].shape))
         for new, old in zip(outputs, node.output)],
        initializers)
    single = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    single.ir_version = 8
    onnx.checker.check_model(single, full_check=True)
    got = run_ort(single, {k: v for k, v in io.items()})
    for new, old in zip(outputs, node.output):
        assert np.allclose(got[new], values[old], atol=TOLERANCE, rtol=0), (node.name, new)
        io[new] = got[new]
    return single, io


def check_against_torch(model, feeds, values, outputs, name):
    for i, o in enumerate(model.graph.output[:len(outputs)]):
        got = values[o.name]
        assert np.allclose(got, outputs[i], atol=TOLERANCE, rtol=0), (name, o.name)


def make_case(h5, cell, bidirectional, initial, dynamo, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batch_first = initial
    model = Recurrent(cell, bidirectional, batch_first, initial).eval()
    dirs = 2 if bidirectional else 1
    x_shape = (BATCH, SEQ, INPUT) if batch_first else (SEQ, BATCH, INPUT)
    args = [torch.from_numpy(rng.standard_normal(x_shape).astype(np.float32))]
    if initial:
        count = 2 if cell is nn.LSTM else 1
        for _ in range(count):
            args.append(torch.from_numpy(
                rng.standard_normal((LAYERS * dirs, BATCH, HIDDEN)).astype(np.float32)))
    tag = "{}_{}_{}{}".format(cell.__name__.lower(), "bi" if bidirectional else "uni",
                              "init" if initial else "noinit", "_dynamo" if dynamo else "")
    exported, names = export(model, tuple(args), dynamo)
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    with torch.no_grad():
        outputs = [t.numpy() for t in model(*args)]
    values = run_ort(with_all_rnn_values(exported), feeds)
    check_against_torch(exported, feeds, values, outputs, tag)
    rnn_nodes = [n for n in exported.graph.node if n.op_type in ("LSTM", "GRU")]
    assert len(rnn_nodes) == LAYERS, tag
    for layer, node in enumerate(rnn_nodes):
        name = f"{tag}_layer{layer}"
        single, io = cut_node(exported, node, values, feeds, initial)
        onnx.save(single, str(OUT_DIR / f"{name}.onnx"))
        group = h5.create_group(name)
        for key, value in io.items():
            group.create_dataset(key, data=value.astype(np.float32), track_times=False)
        print(f"{name}: inputs {[i.name for i in single.graph.input]}, "
              f"outputs {[o.name for o in single.graph.output]}")


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    seed = 100
    with h5py.File(OUT_DIR / "rnn_io.h5", "w", track_order=True) as h5:
        for cell in (nn.LSTM, nn.GRU):
            for bidirectional in (False, True):
                for initial in (False, True):
                    make_case(h5, cell, bidirectional, initial, False, seed)
                    seed += 1
            make_case(h5, cell, True, False, True, seed)
            seed += 1


if __name__ == "__main__":
    main()
