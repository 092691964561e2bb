"""Your network on the command line: `--network FILE|DIR|hf://...` (repeatable) for predict, evaluate and photos,
and `export --onnx`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..models import ALL_KEYS, label
from ..store import hub

if TYPE_CHECKING:
    from .network import YourEntry

NETWORK_HELP = ("also answer with your own network, beside the four: an .onnx file, a checkpoint folder or .zip, "
                "or hf://OWNER/NAME[@REV]; named after its file (NAME=SOURCE names it); repeatable")


def add_network_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", action="append", default=[], metavar="FILE|DIR|hf://...", help=NETWORK_HELP)


def default_name(source: str) -> str:
    """"resnet18" for runs/resnet18.onnx, "cifarnets-resnet" for hf://alice/cifarnets-resnet@v1."""
    text = source.removeprefix(hub.URI_PREFIX).rstrip("/").partition("@")[0]
    return Path(text).stem or text


def entries(values: list[str], device="cpu") -> dict[str, YourEntry]:
    """{name: entry} for each --network, in order; a network that cannot be loaded is a one-line error."""
    from .load import load_network  # onnx and onnxruntime load only when a network is brought in

    taken = [*ALL_KEYS, *(label(k) for k in ALL_KEYS)]
    found = {}
    for value in values:
        name, sep, source = value.partition("=")
        if not sep or "/" in name or name.startswith(("hf:", ".")):  # an '=' inside a path is not a name
            name, source = default_name(value), value
            if name.lower() in {t.lower() for t in taken + list(found)}:  # resnet.onnx beside our ResNet
                name = f"{name} (yours)"
        network = load_network(source, name, taken=taken + list(found))
        if device != "cpu" and network.module is not None:
            network.answerer.to(device)
        found[network.name] = network.entry()
    return found


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint as an ONNX file that loads back as your network",
                       description="Opset 17, a free batch axis, CIFAR-10's normalisation and class order in the "
                                   "file's metadata; it answers like the checkpoint (docs/yours.md).")
    p.add_argument("--onnx", action="store_true", required=True, help="the format (ONNX is the only one)")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder, e.g. checkpoints/resnet")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .export import export_checkpoint

    size = export_checkpoint(args.checkpoint, args.out)
    print(f"wrote {args.out} ({size / 2**20:.1f} MB, ONNX opset 17)", file=sys.stderr)
    return 0
