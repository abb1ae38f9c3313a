#!/usr/bin/env python3
"""Build the fixtures of the ONNX reader's test (tests/test_onnx.c).

Run from the repository root: ``python3 tools/make_onnx_reader_fixtures.py``. Writes into
``tests/fixtures/onnx_reader/``:

* ``mlp.onnx`` (+ ``mlp_weights.bin``, its external data) -- a small conv/BN/gemm graph built
  with ``onnx.helper``: IR version 8, opset 13 (and an unused ``ai.onnx.ml`` import), a dynamic
  batch dim ``N``, an unnamed dynamic dim, every attribute type the reader keeps (FLOAT, INT,
  STRING, TENSOR, FLOATS, INTS, STRINGS, plus a TENSORS one it keeps as unsupported), an
  unnamed node, weights stored as raw_data, float_data, FLOAT16 (int32_data and raw), DOUBLE,
  INT64 (a Reshape shape), INT32, a scalar, and one in a side file at an offset; one weight is
  also listed as a graph input, as exporters before IR version 4 did.
* ``types.onnx`` -- written with onnx's current defaults (IR version 14 with onnx 1.23, newer
  than the onnx.proto cleval is built from; opset 21), nodes
  in the explicit ``ai.onnx`` domain, narrow integer, bool, bfloat16 and uint64 weights, an empty
  tensor, a scalar input and an output without a shape.
* ``half_raw.pb`` -- a serialized FLOAT16 TensorProto with raw_data (for load_tensor).
* bad files, each with the status the reader must give: half of ``mlp.onnx`` (truncated),
  plain text, an empty file, a random blob, a node in a custom domain, an If node (subgraph),
  a sparse initializer, a sequence-typed output, raw_data shorter than the dims, an element
  count that overflows, external data outside the model's folder or missing, negative dims.
* ``expected.json`` -- the facts the test compares against, read back with onnx and
  ``onnx.numpy_helper`` (an independent decoder), including three cases of ONNX's own
  conformance suite (Debian's libonnx-testdata): test_relu, test_conv_with_strides_padding and
  test_batchnorm_example, model and test_data_set_0 tensors.

Everything is deterministic (fixed seeds, no timestamps), so reruns give identical bytes.
"""

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path("tests/fixtures/onnx_reader")
NODE_TESTS = Path("/usr/share/libonnx-testdata/data/node")
CONFORMANCE = ["test_relu", "test_conv_with_strides_padding", "test_batchnorm_example"]

STORAGE = {TensorProto.FLOAT: "f32", TensorProto.DOUBLE: "f32", TensorProto.FLOAT16: "f32",
           TensorProto.BFLOAT16: "f32", TensorProto.INT64: "i64", TensorProto.INT32: "i64",
           TensorProto.INT16: "i64", TensorProto.INT8: "i64", TensorProto.UINT8: "i64",
           TensorProto.UINT16: "i64", TensorProto.UINT32: "i64", TensorProto.UINT64: "i64",
           TensorProto.BOOL: "i64"}
ATTR_TYPES = {onnx.AttributeProto.FLOAT: "FLOAT", onnx.AttributeProto.INT: "INT",
              onnx.AttributeProto.STRING: "STRING", onnx.AttributeProto.TENSOR: "TENSOR",
              onnx.AttributeProto.FLOATS: "FLOATS", onnx.AttributeProto.INTS: "INTS",
              onnx.AttributeProto.STRINGS: "STRINGS"}


def json_float(v):
    """A float32 value for JSON, which has no infinities or NaN: those become strings."""
    v = float(np.float32(v))
    if np.isfinite(v):
        return v
    return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")


def to_json(value, indent=0):
    """JSON with lists of numbers or strings on one line, containers indented."""
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k)}: {to_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = [pad + to_json(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(value)


def rng_floats(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def tensor_facts(tensor, base_dir):
    """What the reader must report for a TensorProto, decoded by onnx.numpy_helper."""
    facts = {"name": tensor.name, "dtype": tensor.data_type, "dims": list(tensor.dims),
             "storage": STORAGE.get(tensor.data_type, "none")}
    if facts["storage"] != "none":
        arr = numpy_helper.to_array(tensor, base_dir=str(base_dir)).ravel()
        if facts["storage"] == "f32":
            facts["values"] = [json_float(v) for v in arr.astype(np.float32)]
        else:
            facts["values"] = [int(v) for v in arr.astype(np.int64)]
    return facts


def value_facts(vi):
    t = vi.type.tensor_type
    facts = {"name": vi.name, "elem_type": t.elem_type, "has_shape": t.HasField("shape")}
    dims, params = [], []
    for d in t.shape.dim:
        which = d.WhichOneof("value")
        dims.append(d.dim_value if which == "dim_value" and d.dim_value >= 0 else -1)
        params.append(d.dim_param if which == "dim_param" and d.dim_param else None)
    facts["dims"], facts["dim_params"] = dims, params
    return facts


def model_facts(path):
    """The reader's view of a model, from onnx's own parser."""
    model = onnx.load(str(path), load_external_data=False)
    g = model.graph
    init_names = {t.name for t in g.initializer}
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    nodes = []
    for i, n in enumerate(g.node):
        attrs = {}
        for a in n.attribute:
            kind = ATTR_TYPES.get(a.type, "unsupported")
            entry = {"type": kind}
            if kind == "FLOAT":
                entry["value"] = json_float(a.f)
            elif kind == "INT":
                entry["value"] = a.i
            elif kind == "STRING":
                entry["value"] = a.s.decode()
            elif kind == "TENSOR":
                entry["value"] = tensor_facts(a.t, path.parent)
            elif kind == "FLOATS":
                entry["value"] = [json_float(v) for v in a.floats]
            elif kind == "INTS":
                entry["value"] = list(a.ints)
            elif kind == "STRINGS":
                entry["value"] = [s.decode() for s in a.strings]
            attrs[a.name] = entry
        nodes.append({"name": n.name or f"{n.op_type}_{i}", "op_type": n.op_type,
                      "inputs": list(n.input), "outputs": list(n.output), "attrs": attrs})
    return {"ir_version": model.ir_version, "opset": opset,
            "producer_name": model.producer_name, "producer_version": model.producer_version,
            "graph_name": g.name, "nodes": nodes,
            "initializers": [tensor_facts(t, path.parent) for t in g.initializer],
            "inputs": [value_facts(v) for v in g.input if v.name not in init_names],
            "outputs": [value_facts(v) for v in g.output],
            "value_infos": [value_facts(v) for v in g.value_info]}


def external(tensor, location, offset, blob):
    """Moves a tensor's raw_data to `blob` at `offset` (zero-padded) and points to it."""
    data = tensor.raw_data
    blob.extend(b"\0" * (offset - len(blob)))
    blob.extend(data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)),
                       ("length", str(len(data)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def make_mlp():
    conv_w = numpy_helper.from_array(rng_floats(1, (2, 1, 3, 3)), "conv.weight")  # raw_data
    conv_b = helper.make_tensor("conv.bias", TensorProto.FLOAT, [2], [0.5, -0.25])  # float_data
    bn_scale = helper.make_tensor("bn.scale", TensorProto.FLOAT16, [2],
                                  np.array([1.5, -0.333], dtype=np.float16))  # int32_data
    bn_bias = helper.make_tensor("bn.bias", TensorProto.DOUBLE, [2], [0.1, 1e-3])
    bn_mean = numpy_helper.from_array(np.array([0.25, 65504], dtype=np.float16), "bn.mean")
    bn_var = numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "bn.var")
    shape = helper.make_tensor("flatten.shape", TensorProto.INT64, [2], [-1, 32])
    fc_w = numpy_helper.from_array(rng_floats(2, (10, 32)), "fc.weight")
    fc_b = numpy_helper.from_array(rng_floats(3, (10,)), "fc.bias")
    scale = helper.make_tensor("out.scale", TensorProto.FLOAT, [], [2.0])  # a scalar
    axes = helper.make_tensor("unused.axes", TensorProto.INT32, [3], [0, -1, 7])
    blob = bytearray()
    external(fc_w, "mlp_weights.bin", 64, blob)

    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="conv0",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], group=1,
                         auto_pad="NOTSET"),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
                         ["b"], name="bn0", epsilon=1e-5, momentum=0.9),
        helper.make_node("Relu", ["b"], ["r"]),  # unnamed: the reader calls it Relu_2
        helper.make_node("MaxPool", ["r"], ["p"], name="pool0", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Reshape", ["p", "flatten.shape"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["g"], name="fc", alpha=0.75,
                         beta=1.0, transB=1),
        helper.make_node("Constant", [], ["k"], name="const0",
                         value=helper.make_tensor("k", TensorProto.FLOAT, [2], [3.0, -4.5])),
        helper.make_node("Mul", ["g", "out.scale"], ["logits"], name="scale0"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax0", axis=-1),
        # Not a real op signature: carries the list attribute types for the reader's test.
        helper.make_node("Identity", ["probs"], ["extra"], name="lists0",
                         weights=[0.5, -1.25, 3.0e-8], tags=["alpha", "", "gamma"],
                         bundle=[helper.make_tensor("t0", TensorProto.FLOAT, [1], [1.0])]),
        # An omitted optional input ("") in the middle, as ONNX writes it.
        helper.make_node("Clip", ["logits", "", "k"], ["clipped"], name="clip0"),
    ]
    graph = helper.make_graph(
        nodes, "reader_mlp",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8]),
                helper.make_tensor_value_info("conv.weight", TensorProto.FLOAT, [2, 1, 3, 3])],
        outputs=[helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10]),
                 helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10]),
                 helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 10]),
                 helper.make_tensor_value_info("clipped", TensorProto.FLOAT, ["N", 10])],
        initializer=[conv_w, conv_b, bn_scale, bn_bias, bn_mean, bn_var, shape, fc_w, fc_b,
                     scale, axes],
        value_info=[helper.make_tensor_value_info("f", TensorProto.FLOAT, ["N", 32])])
    model = helper.make_model(graph, producer_name="cleval-fixtures", producer_version="1.0",
                              opset_imports=[helper.make_opsetid("", 13),
                                             helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    (OUT / "mlp_weights.bin").write_bytes(bytes(blob))
    onnx.save(model, str(OUT / "mlp.onnx"))
    return model


def make_types():
    inits = [
        helper.make_tensor("u8", TensorProto.UINT8, [3], [0, 128, 255]),
        numpy_helper.from_array(np.array([-128, 0, 127], dtype=np.int8), "i8"),
        helper.make_tensor("flags", TensorProto.BOOL, [2, 2], [True, False, False, True]),
        helper.make_tensor("bf", TensorProto.BFLOAT16, [3], [1.5, -3.140625, 1e10]),
        numpy_helper.from_array(np.array([2**40, 7], dtype=np.uint64), "u64"),
        numpy_helper.from_array(np.array([-30000, 30000], dtype=np.int16), "i16"),
        helper.make_tensor("empty", TensorProto.FLOAT, [0, 4], []),
        helper.make_tensor("names", TensorProto.STRING, [2], [b"cat", b"dog"]),
    ]
    nodes = [helper.make_node("Add", ["x", "x"], ["y"], domain="ai.onnx"),
             helper.make_node("Cast", ["y"], ["z"], to=TensorProto.INT64)]
    graph = helper.make_graph(
        nodes, "types",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        outputs=[helper.make_tensor_value_info("z", TensorProto.INT64, None)],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    onnx.save(model, str(OUT / "types.onnx"))


def tiny_graph(nodes, inits=(), outputs=None, **graph_kw):
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]
    graph = helper.make_graph(nodes, "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              outputs, initializer=list(inits), **graph_kw)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def make_bad_files(mlp_bytes):
    bad = []

    def write(name, data, status, *words):
        (OUT / name).write_bytes(data)
        bad.append({"file": name, "status": status, "words": list(words)})

    write("truncated.onnx", mlp_bytes[: len(mlp_bytes) // 2], "INPUT", "not an ONNX model")
    write("text.onnx", b"this is a plain text file, not a model\n", "INPUT", "not an ONNX model")
    write("empty.onnx", b"", "INPUT", "empty")
    write("random.onnx", np.random.default_rng(7).bytes(512), "INPUT", "not an ONNX model")

    custom = tiny_graph([helper.make_node("Relu", ["x"], ["h"], name="ok0"),
                         helper.make_node("FancyOp", ["h"], ["y"], name="custom0",
                                          domain="com.example")])
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    write("custom_domain.onnx", custom.SerializeToString(), "UNSUPPORTED", "custom0", "FancyOp",
          "com.example")

    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "branch", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    sub = tiny_graph([helper.make_node("If", ["cond"], ["y"], name="choose0",
                                       then_branch=branch, else_branch=branch)], [cond])
    write("subgraph.onnx", sub.SerializeToString(), "UNSUPPORTED", "choose0", "If", "subgraph")

    sparse = tiny_graph([helper.make_node("Identity", ["x"], ["y"])])
    sparse.graph.sparse_initializer.append(helper.make_sparse_tensor(
        helper.make_tensor("sparse_w", TensorProto.FLOAT, [1], [1.0]),
        helper.make_tensor("sparse_w_idx", TensorProto.INT64, [1], [0]), [4]))
    write("sparse.onnx", sparse.SerializeToString(), "UNSUPPORTED", "sparse_w")

    seq_out = helper.make_tensor_sequence_value_info("y", TensorProto.FLOAT, None)
    seq = tiny_graph([helper.make_node("SequenceConstruct", ["x"], ["y"], name="seq0")],
                     outputs=[seq_out])
    write("sequence_output.onnx", seq.SerializeToString(), "UNSUPPORTED", "'y'", "sequence")

    short = TensorProto(name="short_w", data_type=TensorProto.FLOAT, dims=[2, 3],
                        raw_data=np.zeros(5, np.float32).tobytes())
    write("short_raw.onnx", tiny_graph([helper.make_node("Identity", ["x"], ["y"])],
                                       [short]).SerializeToString(),
          "INPUT", "short_w", "raw_data")

    huge = TensorProto(name="huge_w", data_type=TensorProto.FLOAT,
                       dims=[2**62, 2**62, 4], raw_data=b"")
    write("overflow.onnx", tiny_graph([helper.make_node("Identity", ["x"], ["y"])],
                                      [huge]).SerializeToString(),
          "INPUT", "huge_w", "overflow")

    negative = TensorProto(name="neg_w", data_type=TensorProto.FLOAT, dims=[2, -3], raw_data=b"")
    write("negative_dims.onnx", tiny_graph([helper.make_node("Identity", ["x"], ["y"])],
                                           [negative]).SerializeToString(),
          "INPUT", "neg_w", "negative")

    def external_model(location):
        w = numpy_helper.from_array(np.ones(2, np.float32), "ext_w")
        external(w, location, 0, bytearray())
        return tiny_graph([helper.make_node("Add", ["x", "ext_w"], ["y"])], [w])

    write("external_escape.onnx", external_model("../mlp_weights.bin").SerializeToString(),
          "INPUT", "ext_w", "../mlp_weights.bin")
    write("external_missing.onnx", external_model("no_such.bin").SerializeToString(),
          "INPUT", "ext_w", "no_such.bin")
    return bad


def make_half_raw():
    t = numpy_helper.from_array(np.array([[0.5, -2.0, 6.1e-5], [np.inf, -0.0, 1e-7]],
                                         dtype=np.float16), "half")
    (OUT / "half_raw.pb").write_bytes(t.SerializeToString())
    return tensor_facts(t, OUT)


def conformance_facts():
    cases = []
    for name in CONFORMANCE:
        folder = NODE_TESTS / name
        tensors = []
        for pb in sorted((folder / "test_data_set_0").glob("*.pb")):
            t = TensorProto()
            t.ParseFromString(pb.read_bytes())
            facts = tensor_facts(t, pb.parent)
            facts["file"] = f"test_data_set_0/{pb.name}"
            tensors.append(facts)
        cases.append({"dir": name, "model": model_facts(folder / "model.onnx"),
                      "tensors": tensors})
    return cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    make_mlp()
    make_types()
    expected = {
        "models": {name: model_facts(OUT / name) for name in ("mlp.onnx", "types.onnx")},
        "tensors": {"half_raw.pb": make_half_raw()},
        "bad": make_bad_files((OUT / "mlp.onnx").read_bytes()),
        "conformance_root": str(NODE_TESTS),
        "conformance": conformance_facts(),
    }
    (OUT / "expected.json").write_text(to_json(expected) + "\n")


if __name__ == "__main__":
    main()
