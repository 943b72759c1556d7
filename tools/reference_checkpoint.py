"""The training checkpoints of the reference PyTorch implementation of RAT+, read and written.

A reference checkpoint is one `torch.save` file holding a dict whose `task` is the model's
state_dict (its names in REFERENCE_NAMES below), `config` (an EasyDict), `step` and optimizer
state. `read_reference` turns one into a ratplus model config and SPEC §7 parameters, reading
every size from the tensors themselves (the head count from the config's
model.backbone.seq_cell.d_head, or from the caller); `reference_checkpoint` builds the dict the
other way. Variants it accepts: names carrying `_orig_mod.` (saved after torch.compile), the
forget gate kept apart (`seq_layer.fgate_proj.weight`, the last d rows of the fused in_proj),
a bare state_dict instead of the dict.

Loading runs no code from the file: it reads the torch.save zip archive itself, rebuilding only
tensors (from the archive's data records) and plain containers; every other object (the EasyDict
config, optimizer and scheduler state) becomes an inert dict, so neither EasyDict nor the
reference code needs to be installed, and any PyTorch version's files load.
"""

import pickle
import re
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import torch

from ratplus_reference import InputError

ORIG_MOD = "_orig_mod."
EMBED, FINAL_NORM, HEAD = "embedding.wte.weight", "backbone.ln.weight", "head.lm_head.weight"
LAYER = "backbone.layers.%d."
FGATE = "seq_layer.fgate_proj.weight"
# Reference name (of a layer: after "backbone.layers.{i}.") -> SPEC §7 name (after "layers/{i}/").
LAYER_NAMES = OrderedDict([
    ("seq_layer.input_norm.weight", "attn_norm/weight"),
    ("seq_layer.in_proj.weight", "attn/in_proj/weight"),
    ("seq_layer.out_proj.weight", "attn/out_proj/weight"),
    ("hidden_layer.ln.weight", "ffn_norm/weight"),
    ("hidden_layer.fc1.weight", "ffn/fc1/weight"),
    ("hidden_layer.fc2.weight", "ffn/fc2/weight"),
])
D_HEAD_KEY = ("model", "backbone", "seq_cell", "d_head")
EXACT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # widen to float32 without loss
NORM_EPS, ROPE_BASE = 1e-6, 10000.0  # SPEC §2; the reference implementation fixes both


# ------------------------------------------------------------------------- unpickling

class InertObject(dict):
    """Stands for a pickled object of a class this loader does not rebuild: keeps its dict items
    and whatever else the pickle gives it, and runs nothing."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.pickled_args = (args, kwargs)

    def __setstate__(self, state):
        self.pickled_state = state

    def append(self, item):
        self.extend([item])

    def extend(self, items):
        self.setdefault("__items__", []).extend(items)


class StorageType:
    """What a pickled torch.<X>Storage class stands for here: its element type."""

    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return torch.as_strided(storage, tuple(size), tuple(stride), offset)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


SAFE_BUILTINS = {"set", "frozenset", "list", "dict", "tuple", "int", "float", "complex", "bool",
                 "str", "bytes", "bytearray", "slice", "range"}
REBUILDERS = {("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
              ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
              ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
              ("collections", "OrderedDict"): OrderedDict,
              ("torch", "Size"): torch.Size, ("torch", "device"): torch.device}


class CheckpointUnpickler(pickle.Unpickler):
    """The data.pkl of a torch.save zip archive: tensors come from the archive's data/ records,
    plain containers are rebuilt, every other object becomes an InertObject."""

    def __init__(self, stream, archive, prefix):
        super().__init__(stream, encoding="utf-8")
        self.archive, self.prefix = archive, prefix
        self.storages = {}  # key -> storage, so that views of one storage share it as saved

    def find_class(self, module, name):
        if module == "builtins" and name in SAFE_BUILTINS:
            return super().find_class(module, name)
        if (module, name) in REBUILDERS:
            return REBUILDERS[(module, name)]
        if module == "torch" and name.endswith("Storage") and hasattr(getattr(torch, name, None), "dtype"):
            return StorageType(getattr(torch, name).dtype)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return type(name, (InertObject,), {"__module__": "inert." + module})

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, count = saved_id
        if kind != "storage" or not isinstance(storage_type, StorageType):
            raise pickle.UnpicklingError("unknown persistent record %r" % (saved_id,))
        if key not in self.storages:
            self.storages[key] = self._read_storage(storage_type.dtype, key, count)
        return self.storages[key]

    def _read_storage(self, dtype, key, count):
        info = self.archive.getinfo("%sdata/%s" % (self.prefix, key))
        buffer = bytearray(info.file_size)
        with self.archive.open(info) as record:
            if record.readinto(buffer) != len(buffer):
                raise pickle.UnpicklingError("record data/%s is short" % key)
        storage = torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)
        if storage.numel() != count:
            raise pickle.UnpicklingError("record data/%s holds %d elements, not %d"
                                         % (key, storage.numel(), count))
        return storage


def load_torch_file(path):
    """The object a torch.save zip archive holds (torch 1.6 and later), built without running
    code from the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise InputError("%s: not a torch.save archive (no single <name>/data.pkl)" % path)
            prefix = pickles[0][:-len("data.pkl")]
            if prefix + "byteorder" in archive.namelist() and \
                    archive.read(prefix + "byteorder") != sys.byteorder.encode():
                raise InputError("%s: saved on a machine of the other byte order" % path)
            with archive.open(pickles[0]) as stream:
                return CheckpointUnpickler(stream, archive, prefix).load()
    except zipfile.BadZipFile as exc:
        raise InputError("%s: not a PyTorch checkpoint (a torch.save zip archive): %s" % (path, exc)) from exc
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise InputError("%s: damaged PyTorch checkpoint (%s: %s)" % (path, type(exc).__name__, exc)) from exc


# ---------------------------------------------------------------------------- reading

def _state_dict(path, obj):
    """The model state_dict of a loaded file, its names without `_orig_mod.`."""
    if isinstance(obj, dict) and "task" in obj:
        obj = obj["task"]
    if not isinstance(obj, dict) or not obj:
        raise InputError("%s: neither a dict with the model's state_dict under 'task' nor a "
                         "state_dict" % path)
    state = OrderedDict()
    for name, value in obj.items():
        plain = str(name).replace(ORIG_MOD, "")
        if not isinstance(value, torch.Tensor):
            raise InputError("%s: %s: not a tensor (%s)" % (path, name, type(value).__name__))
        if plain in state:
            raise InputError("%s: %s: given twice (with and without %r)" % (path, plain, ORIG_MOD))
        state[plain] = value
    return state


def _config_value(obj, keys):
    """obj[k1][k2]... of the file's config, or None."""
    value = obj.get("config") if isinstance(obj, dict) else None
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _n_heads(path, obj, d_model, n_heads):
    """The head count: the config's d_model / d_head, or n_heads (which must agree with it)."""
    d_head = _config_value(obj, D_HEAD_KEY)
    from_config = None
    if d_head is not None:
        if not isinstance(d_head, int) or d_head < 1 or d_model % d_head:
            raise InputError("%s: config %s = %r does not divide d_model %d (from %s)"
                             % (path, ".".join(D_HEAD_KEY), d_head, d_model, EMBED))
        from_config = d_model // d_head
    if n_heads is not None and from_config is not None and n_heads != from_config:
        raise InputError("%s: --n-heads %d contradicts the config's %d heads (%s = %d)"
                         % (path, n_heads, from_config, ".".join(D_HEAD_KEY), d_head))
    result = n_heads if n_heads is not None else from_config
    if result is None:
        raise InputError("%s: the head count is not in the file (no config %s): give --n-heads"
                         % (path, ".".join(D_HEAD_KEY)))
    if result < 1 or d_model % result or (d_model // result) % 2:
        raise InputError("%s: %d heads do not split d_model %d (from %s) into heads of an even width"
                         % (path, result, d_model, EMBED))
    return result


class _Tensors:
    """Takes the state_dict's tensors one by one, checking each one's shape, type and values."""

    def __init__(self, path, state):
        self.path, self.state, self.taken = path, state, set()

    def has(self, name):
        return name in self.state

    def take(self, name, shape=None, what=""):
        if name not in self.state:
            raise InputError("%s: %s: missing tensor" % (self.path, name))
        tensor = self.state[name]
        self.taken.add(name)
        if tensor.dtype not in EXACT_DTYPES:
            raise InputError("%s: %s: dtype %s (float32, bfloat16 or float16 expected)"
                             % (self.path, name, tensor.dtype))
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            raise InputError("%s: %s: shape %s, expected %s%s"
                             % (self.path, name, tuple(tensor.shape), tuple(shape), what))
        array = tensor.detach().to(torch.float32).contiguous().numpy()
        if not np.isfinite(array).all():
            raise InputError("%s: %s: holds a non-finite value" % (self.path, name))
        return array

    def untaken(self):
        return [name for name in self.state if name not in self.taken]


def _layer_count(path, state):
    indices = {int(m.group(1)) for m in (re.match(r"backbone\.layers\.(\d+)\.", n) for n in state) if m}
    if not indices:
        raise InputError("%s: no tensor of a layer (%s...)" % (path, LAYER % 0))
    return max(indices) + 1


def read_reference(path, n_heads=None):
    """(model config, SPEC §7 parameters as float32 arrays, step) of a reference checkpoint."""
    obj = load_torch_file(path)
    state = _state_dict(path, obj)
    tensors = _Tensors(path, state)
    embed = tensors.take(EMBED)
    if embed.ndim != 2:
        raise InputError("%s: %s: shape %s, expected (vocab, d_model)" % (path, EMBED, embed.shape))
    V, d = embed.shape
    L = _layer_count(path, state)
    fc1 = tensors.take(LAYER % 0 + "hidden_layer.fc1.weight")
    if fc1.ndim != 2 or fc1.shape[1] != d:
        raise InputError("%s: %s: shape %s, expected (d_ffn, %d)"
                         % (path, LAYER % 0 + "hidden_layer.fc1.weight", fc1.shape, d))
    f = fc1.shape[0]
    params = OrderedDict([("embed/weight", embed)])
    recurrence = None
    for i in range(L):
        prefix = LAYER % i
        shapes = {"seq_layer.input_norm.weight": (d,), "seq_layer.out_proj.weight": (d, d),
                  "hidden_layer.ln.weight": (d,), "hidden_layer.fc1.weight": (f, d),
                  "hidden_layer.fc2.weight": (d, f)}
        for name, spec in LAYER_NAMES.items():
            if name == "seq_layer.in_proj.weight":
                params["layers/%d/%s" % (i, spec)], rec = _in_proj(tensors, prefix, d)
                if recurrence is not None and rec != recurrence:
                    raise InputError("%s: %s: layer %d has %s forget gate, layer 0 %s"
                                     % (path, prefix + name, i, "a" if rec else "no",
                                        "has one" if recurrence else "has none"))
                recurrence = rec
            else:
                what = " (d_ffn from %s)" % (LAYER % 0 + "hidden_layer.fc1.weight") if "fc" in name else ""
                params["layers/%d/%s" % (i, spec)] = tensors.take(prefix + name, shapes[name], what)
    params["final_norm/weight"] = tensors.take(FINAL_NORM, (d,))
    tied = True
    if tensors.has(HEAD):
        head = tensors.take(HEAD, (V, d))
        tied = np.array_equal(head, embed)
        if not tied:
            params["lm_head/weight"] = head
    unknown = tensors.untaken()
    if unknown:
        raise InputError("%s: tensors the RAT+ model does not have: %s" % (path, ", ".join(unknown)))
    cfg = {"vocab_size": V, "d_model": d, "n_layers": L, "n_heads": _n_heads(path, obj, d, n_heads),
           "d_ffn": f, "norm_eps": NORM_EPS, "rope_base": ROPE_BASE, "tie_embeddings": tied,
           "recurrence": recurrence}
    step = obj.get("step", 0) if isinstance(obj, dict) else 0
    return cfg, params, step if isinstance(step, int) else 0


def _in_proj(tensors, prefix, d):
    """A layer's fused in_proj [5d or 4d, d] and whether it has the forget gate."""
    name = prefix + "seq_layer.in_proj.weight"
    if tensors.has(prefix + FGATE):
        fused = np.concatenate([tensors.take(name, (4 * d, d), " (o, q, k, v beside %s)" % FGATE),
                                tensors.take(prefix + FGATE, (d, d))])
        return fused, True
    w = tensors.take(name)
    if w.shape not in ((5 * d, d), (4 * d, d)):
        raise InputError("%s: %s: shape %s, expected (%d, %d) (o, q, k, v, g) or (%d, %d) (o, q, k, v)"
                         % (tensors.path, name, w.shape, 5 * d, d, 4 * d, d))
    return w, w.shape[0] == 5 * d


# ---------------------------------------------------------------------------- writing

def reference_checkpoint(cfg, params, step):
    """The dict a reference checkpoint holds: `task` (state_dict, fused in_proj, the head present
    even when tied: then it is the embedding's tensor), `config` and `step`."""
    embed = torch.from_numpy(np.ascontiguousarray(params["embed/weight"], dtype=np.float32))
    state = OrderedDict([(EMBED, embed)])
    for i in range(cfg["n_layers"]):
        for name, spec in LAYER_NAMES.items():
            state[LAYER % i + name] = torch.from_numpy(
                np.ascontiguousarray(params["layers/%d/%s" % (i, spec)], dtype=np.float32))
    state[FINAL_NORM] = torch.from_numpy(np.ascontiguousarray(params["final_norm/weight"], dtype=np.float32))
    state[HEAD] = embed if cfg["tie_embeddings"] else torch.from_numpy(
        np.ascontiguousarray(params["lm_head/weight"], dtype=np.float32))
    config = {
        "model": {"backbone": {"num_layers": cfg["n_layers"], "d_model": cfg["d_model"],
                               "seq_cell": {"d_head": cfg["d_model"] // cfg["n_heads"],
                                            "apply_re": cfg["recurrence"]}}},
        "task": {"tie_embedding": cfg["tie_embeddings"]},
    }
    return {"task": state, "config": config, "step": int(step)}


def save_reference(stream, cfg, params, step):
    """Writes the reference checkpoint of a model to an open binary stream."""
    torch.save(reference_checkpoint(cfg, params, step), stream)
