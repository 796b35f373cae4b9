"""The little prototxt (protobuf text format) reading the project needs.

The text is parsed into nested dictionaries without a schema, so fields that
standard Caffe rejects (the fork's ``msra_coeff`` and ``crop_param``) are simply
kept, and everything the project does not use is ignored. :func:`read_prototxt`
then extracts the network input shape and, per layer, the few settings that
decide the architecture.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_recon.errors import ModelFormatError

#: A parsed message: field name -> list of values (numbers, strings, enum words or messages).
Message = dict[str, list[Any]]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<punct>[{}:\[\],;<>])
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<word>[-+]?[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)

#: Old V1 layer type words -> current type names.
_V1_TYPE_WORDS = {
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "INNER_PRODUCT": "InnerProduct",
    "POOLING": "Pooling",
    "RELU": "ReLU",
    "LRN": "LRN",
    "DROPOUT": "Dropout",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "DATA": "Data",
    "CONCAT": "Concat",
    "FLATTEN": "Flatten",
}


def _tokens(text: str, source: str) -> list[tuple[str, str, int]]:
    """Split prototxt text into (kind, text, line) tokens, dropping comments."""
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            line = text.count("\n", 0, pos) + 1
            raise ModelFormatError(
                f"{source}, line {line}: cannot parse the prototxt near "
                f"{text[pos : pos + 20].strip()!r}. Check the file is a Caffe network text file."
            )
        kind = match.lastgroup or ""
        if kind != "comment":
            tokens.append((kind, match.group(kind), text.count("\n", 0, match.start(kind)) + 1))
        pos = match.end()
    return tokens


def _scalar(kind: str, text: str) -> Any:
    if kind == "string":
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    if text in ("true", "false"):
        return text == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text  # an enum word such as MAX


def parse_prototxt(text: str, source: str = "<prototxt>") -> Message:
    """Parse protobuf text format into nested dictionaries.

    Parameters
    ----------
    text : str
    source : str
        Name used in error messages.

    Returns
    -------
    Message : dict mapping field name -> list of values, in order of appearance.

    Raises
    ------
    ModelFormatError
        On unbalanced braces, a missing value or an unreadable token.
    """
    tokens = _tokens(text, source)
    stack: list[Message] = [{}]
    i = 0

    def fail(what: str, line: int) -> ModelFormatError:
        return ModelFormatError(f"{source}, line {line}: {what}. The prototxt does not parse.")

    while i < len(tokens):
        kind, word, line = tokens[i]
        if kind == "punct" and word == "}":
            if len(stack) == 1:
                raise fail("unexpected '}'", line)
            stack.pop()
            i += 1
            continue
        if kind == "punct" and word in (",", ";"):
            i += 1
            continue
        if kind != "word":
            raise fail(f"expected a field name, found {word!r}", line)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "", line)
        opens = ("{", "<")
        if nxt[1] == ":" and i + 2 < len(tokens) and tokens[i + 2][1] not in opens:
            value_kind, value, _ = tokens[i + 2]
            if value_kind not in ("word", "number", "string"):
                raise fail(f"field '{word}' has no value", line)
            stack[-1].setdefault(word, []).append(_scalar(value_kind, value))
            i += 3
        elif nxt[1] in opens or (nxt[1] == ":" and i + 2 < len(tokens)):
            child: Message = {}
            stack[-1].setdefault(word, []).append(child)
            stack.append(child)
            i += 2 if nxt[1] in opens else 3
        else:
            raise fail(f"field '{word}' has no value", line)
    if len(stack) != 1:
        raise fail("a '{' is never closed", tokens[-1][2] if tokens else 1)
    return stack[0]


@dataclass
class LayerDef:
    """One layer of a prototxt.

    Attributes
    ----------
    name, type : str
    bottoms, tops : list of str
    params : Message
        The layer's own settings, flattened from its ``*_param`` block
        (``num_output``, ``kernel_size``, ``negative_slope``, ``crop_width``, ...).
    """

    name: str
    type: str
    bottoms: list[str] = field(default_factory=list)
    tops: list[str] = field(default_factory=list)
    params: Message = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """First value of a setting, or ``default``."""
        values = self.params.get(key)
        return values[0] if values else default


@dataclass
class NetDef:
    """What the project reads from a prototxt: input shape and layers in order."""

    source: str
    input_shape: list[int]
    layers: list[LayerDef]

    def layer(self, name: str) -> LayerDef:
        """The layer of that name; raises ModelFormatError naming the file if absent."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ModelFormatError(
            f"{self.source}: layer '{name}' is missing; found {[x.name for x in self.layers]}."
        )


def _input_shape(net: Message) -> list[int]:
    shapes = net.get("input_shape", [])
    if shapes and isinstance(shapes[0], dict):
        return [int(d) for d in shapes[0].get("dim", [])]
    if net.get("input_dim"):
        return [int(d) for d in net["input_dim"]]
    for layer in net.get("layer", []):
        if isinstance(layer, dict) and layer.get("type", [""])[0] == "Input":
            shape = layer.get("input_param", [{}])[0].get("shape", [{}])[0]
            return [int(d) for d in shape.get("dim", [])]
    return []


def _layer_def(raw: Message, v1: bool) -> LayerDef:
    type_name = str(raw.get("type", [""])[0])
    if v1:
        type_name = _V1_TYPE_WORDS.get(type_name, type_name)
    params: Message = {}
    for key, values in raw.items():
        if key.endswith("_param") and values and isinstance(values[0], dict):
            params.update(values[0])
    for key in ("weight_filler", "bias_filler", "shape"):
        if key in params and isinstance(params[key][0], dict):
            params.update({f"{key}.{k}": v for k, v in params[key][0].items()})
    return LayerDef(
        name=str(raw.get("name", [""])[0]),
        type=type_name,
        bottoms=[str(b) for b in raw.get("bottom", [])],
        tops=[str(t) for t in raw.get("top", [])],
        params=params,
    )


def read_prototxt(path: str | os.PathLike[str]) -> NetDef:
    """Read a Caffe network prototxt (current or V1 layout, fork fields accepted).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    NetDef

    Raises
    ------
    ModelFormatError
        If the file cannot be read, does not parse, or has no layers.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ModelFormatError(f"{path}: cannot read the prototxt ({err}).") from err
    net = parse_prototxt(text, source=str(path))
    raw_layers = [(x, False) for x in net.get("layer", [])]
    raw_layers += [(x, True) for x in net.get("layers", [])]
    layers = [_layer_def(raw, v1) for raw, v1 in raw_layers if isinstance(raw, dict)]
    if not layers:
        raise ModelFormatError(f"{path}: no 'layer' entries; not a Caffe network prototxt.")
    return NetDef(source=str(path), input_shape=_input_shape(net), layers=layers)
