"""Just enough of the ONNX protobuf wire format to read exported graphs without the onnx package: opset, graph
inputs/outputs (name, element type, dims), initializers (name, data type, dims, raw bytes) and nodes. The tests check
exports with it; trainer.reexport reads a model directory's weights back with it."""

from typing import Dict, List, Tuple


def _varint(b: bytes, i: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        x = b[i]
        i += 1
        result |= (x & 0x7F) << shift
        if not x & 0x80:
            return result, i
        shift += 7


def fields(b: bytes) -> List[Tuple[int, object]]:
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        out.append((num, v))
    return out


def _get(fs, num):
    return [v for n, v in fs if n == num]


def _value_info(b: bytes) -> Dict[str, object]:
    fs = fields(b)
    name = _get(fs, 1)[0].decode()
    type_proto = fields(_get(fs, 2)[0])
    tensor = fields(_get(type_proto, 1)[0])  # TypeProto.tensor_type
    elem = _get(tensor, 1)[0]
    dims = []
    for shape in _get(tensor, 2):
        for d in _get(fields(shape), 1):
            df = fields(d)
            dims.append(_get(df, 1)[0] if _get(df, 1) else _get(df, 2)[0].decode())
    return {"name": name, "elem_type": elem, "dims": dims}


def _packed_ints(vals) -> List[int]:
    out = []
    for v in vals:
        if isinstance(v, int):
            out.append(v)
        else:  # packed
            i = 0
            while i < len(v):
                x, i = _varint(v, i)
                out.append(x)
    return out


def read_model(path: str) -> dict:
    with open(path, "rb") as f:
        model = fields(f.read())
    opsets = [{n: v for n, v in fields(o)} for o in _get(model, 8)]
    graph = fields(_get(model, 7)[0])
    nodes = []
    for nb in _get(graph, 1):
        nf = fields(nb)
        attrs = {}
        for ab in _get(nf, 5):
            af = fields(ab)
            attrs[_get(af, 1)[0].decode()] = _get(af, 3)[0] if _get(af, 3) else None
        nodes.append({"op": _get(nf, 4)[0].decode(), "inputs": [x.decode() for x in _get(nf, 1)],
                      "outputs": [x.decode() for x in _get(nf, 2)], "attrs": attrs})
    inits = []
    for tb in _get(graph, 5):
        tf = fields(tb)
        raw = _get(tf, 9)
        inits.append({"name": _get(tf, 8)[0].decode(), "data_type": _get(tf, 2)[0], "dims": _packed_ints(_get(tf, 1)),
                      "raw": raw[0] if raw else None})
    return {"opset": [o.get(2) for o in opsets if not o.get(1)], "nodes": nodes, "initializers": inits,
            "inputs": [_value_info(x) for x in _get(graph, 11)], "outputs": [_value_info(x) for x in _get(graph, 12)]}
