#!/usr/bin/env python3
"""Converts RAT+ checkpoints between the reference PyTorch format, ratplus HDF5 and safetensors.

Usage: convert_checkpoint.py IN OUT [--n-heads H]

The formats follow from the names:
  .pth          a training checkpoint of the reference PyTorch implementation (tools/reference_checkpoint.py)
  .h5           a ratplus checkpoint (SPEC §7); only its /model group is read
  .safetensors  a safetensors file (tools/safetensors_file.py) with config.json beside it
  a folder      (a name without extension, ending in '/', or an existing directory)
                model.safetensors and config.json in it
Directions: .pth -> .h5, .h5 -> .pth, .h5 -> .safetensors or a folder, .pth -> .safetensors or a folder.

Every size is read from the tensors; the head count of a .pth comes from its config
(model.backbone.seq_cell.d_head) or from --n-heads. A .h5 is written as ratplus writes one
(chunked, a Fletcher-32 checksum on every dataset, the config as fixed-length text), so
`ratplus ckpt inspect --verify` vouches for it. A .pth gets {"task": state_dict in the reference
names, "config": {model.backbone.{num_layers, d_model, seq_cell.{d_head, apply_re}},
task.tie_embedding}, "step": /train@step of a training checkpoint, else 0}. Safetensors tensors
carry the SPEC §7 names with '.' for '/' (the state_dict names of tools/torch_baseline.py's
RatPlus; no lm_head when tied); config.json and the header's __metadata__["config"] hold the
model config (SPEC §10 model keys).

Every file is written to a temporary name in its folder and renamed when complete.
Exit codes: 0 done, 2 bad input (the message names the file and the tensor), 1 I/O or internal failure.
"""

import argparse
import json
import os
import sys


def _reexec_with_system_python():
    """torch, NumPy and h5py come from Debian (python3-torch, python3-numpy, python3-h5py): when
    the python3 found first lacks them, rerun the same command under /usr/bin/python3."""
    try:
        import h5py  # noqa: F401
        import numpy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system):
            os.execv(system, [system] + sys.argv)


if __name__ == "__main__":
    _reexec_with_system_python()

import h5py  # noqa: E402
import numpy as np  # noqa: E402

import ratplus_reference as ref  # noqa: E402
from ratplus_reference import InputError  # noqa: E402
from reference_checkpoint import NORM_EPS, ROPE_BASE, read_reference, save_reference  # noqa: E402
from safetensors_file import write_safetensors  # noqa: E402

MODEL_KEYS = ("vocab_size", "d_model", "n_layers", "n_heads", "d_ffn", "norm_eps", "rope_base",
              "tie_embeddings", "recurrence")
DIRECTIONS = {("pth", "h5"), ("h5", "pth"), ("h5", "safetensors"), ("pth", "safetensors"),
              ("h5", "folder"), ("pth", "folder")}
MODEL_FILE, CONFIG_FILE = "model.safetensors", "config.json"  # a folder's files


# ---------------------------------------------------------------------------- formats

def input_kind(path):
    extension = os.path.splitext(path)[1]
    if extension in (".pth", ".h5"):
        return extension[1:]
    raise InputError("%s: unknown input format %r (expected .pth or .h5)" % (path, extension))


def output_kind(path):
    extension = os.path.splitext(path.rstrip("/"))[1]
    if path.endswith("/") or os.path.isdir(path) or not extension:
        return "folder"
    if extension in (".pth", ".h5", ".safetensors"):
        return extension[1:]
    raise InputError("%s: unknown output format %r (expected .pth, .h5, .safetensors or a folder)"
                     % (path, extension))


# ---------------------------------------------------------------------------- reading

def read_ratplus(path, n_heads):
    """(model config, SPEC §7 parameters as float32 arrays, step) of a ratplus .h5."""
    try:
        cfg, params = ref.load_checkpoint(path, dtype=np.float32)
        with h5py.File(path, "r") as f:
            step = int(f["train"].attrs["step"]) if "train" in f and "step" in f["train"].attrs else 0
    except InputError:
        raise
    except Exception as exc:  # h5py reports a failed checksum or a damaged file as OSError and others
        raise InputError("%s: cannot read (%s: %s)" % (path, type(exc).__name__, exc)) from exc
    for name, array in params.items():
        if not np.isfinite(array).all():
            raise InputError("%s: /model/%s: holds a non-finite value" % (path, name))
    if n_heads is not None and n_heads != cfg["n_heads"]:
        raise InputError("%s: --n-heads %d contradicts the checkpoint's n_heads %d"
                         % (path, n_heads, cfg["n_heads"]))
    return {k: cfg[k] for k in MODEL_KEYS}, params, step


def read_model(path, kind, n_heads):
    if not os.path.isfile(path):
        raise InputError("%s: no such file" % path)
    if kind == "h5":
        return read_ratplus(path, n_heads)
    return read_reference(path, n_heads)


# ---------------------------------------------------------------------------- writing

def write_files(outputs):
    """outputs: [(path, write(temporary path))]; writes each to a temporary name in its folder,
    syncs it, renames them all only once every one is complete, and syncs the folders."""
    temporaries = []
    try:
        for path, write in outputs:
            folder, name = os.path.split(os.path.abspath(path))
            temporary = os.path.join(folder, ".%s.tmp-%d" % (name, os.getpid()))
            temporaries.append(temporary)
            write(temporary)
            with open(temporary, "rb") as f:
                os.fsync(f.fileno())
        for (path, _), temporary in zip(outputs, temporaries):
            os.replace(temporary, path)
        for folder in {os.path.dirname(os.path.abspath(path)) for path, _ in outputs}:
            descriptor = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
    finally:
        for temporary in temporaries:
            if os.path.exists(temporary):
                os.remove(temporary)


def h5_writer(cfg, params):
    return lambda path: ref.write_checkpoint(path, dict(cfg), params, fixed_length_config=True,
                                             checksums=True)


def pth_writer(cfg, params, step):
    def write(path):
        with open(path, "wb") as f:
            save_reference(f, cfg, params, step)
    return write


def safetensors_writers(path, cfg, params):
    """The safetensors file at path and config.json beside it."""
    config_text = json.dumps(cfg, indent=2) + "\n"
    tensors = {name.replace("/", "."): array for name, array in params.items()}

    def write_tensors(temporary):
        with open(temporary, "wb") as f:
            write_safetensors(f, tensors, {"format": "pt", "config": json.dumps(cfg)})

    def write_config(temporary):
        with open(temporary, "w") as f:
            f.write(config_text)
    return [(path, write_tensors), (os.path.join(os.path.dirname(path), CONFIG_FILE), write_config)]


def require_folder(path, what):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError("%s: %s %s does not exist" % (path, what, folder))


def write_model(path, kind, cfg, params, step):
    if kind == "folder":
        require_folder(path.rstrip("/"), "the folder holding")
        created = not os.path.isdir(path)
        if created:
            os.mkdir(path)
        try:
            write_files(safetensors_writers(os.path.join(path, MODEL_FILE), cfg, params))
        except BaseException:
            if created and not os.listdir(path):
                os.rmdir(path)
            raise
        return
    require_folder(path, "its folder")
    if kind == "h5":
        write_files([(path, h5_writer(cfg, params))])
    elif kind == "pth":
        write_files([(path, pth_writer(cfg, params, step))])
    else:
        write_files(safetensors_writers(path, cfg, params))


# -------------------------------------------------------------------------------- CLI

def convert(source, target, n_heads=None):
    in_kind, out_kind = input_kind(source), output_kind(target)
    if (in_kind, out_kind) not in DIRECTIONS:
        raise InputError("%s -> %s: no conversion from .%s to %s (directions: .pth -> .h5, "
                         ".h5 -> .pth, .h5 or .pth -> .safetensors or a folder)"
                         % (source, target, in_kind, out_kind if out_kind == "folder" else "." + out_kind))
    cfg, params, step = read_model(source, in_kind, n_heads)
    if out_kind == "pth" and (cfg["norm_eps"], cfg["rope_base"]) != (NORM_EPS, ROPE_BASE):
        raise InputError("%s: norm_eps %g and rope_base %g: the reference implementation has %g and %g"
                         % (source, cfg["norm_eps"], cfg["rope_base"], NORM_EPS, ROPE_BASE))
    write_model(target, out_kind, cfg, params, step)
    return cfg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="IN", help=".pth or .h5")
    parser.add_argument("output", metavar="OUT", help=".h5, .pth, .safetensors or a folder")
    parser.add_argument("--n-heads", type=int, metavar="H",
                        help="head count of a .pth whose config lacks model.backbone.seq_cell.d_head")
    args = parser.parse_args(argv)
    try:
        cfg = convert(args.input, args.output, args.n_heads)
    except InputError as exc:
        print("convert_checkpoint: %s" % exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print("convert_checkpoint: %s -> %s: cannot write (%s)" % (args.input, args.output, exc),
              file=sys.stderr)
        return 1
    print("convert_checkpoint: %s -> %s (%d layers, d_model %d, %d heads, vocab %d, %s, %s)"
          % (args.input, args.output, cfg["n_layers"], cfg["d_model"], cfg["n_heads"],
             cfg["vocab_size"], "RAT+" if cfg["recurrence"] else "attention-only",
             "tied" if cfg["tie_embeddings"] else "untied"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
