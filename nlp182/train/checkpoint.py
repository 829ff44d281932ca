"""Atomic, pickle-free checkpoints: nested state (dicts, lists, tensors, numbers) in one safetensors file.

A checkpoint is a safetensors file whose tensors are the leaves of the state tree and whose
metadata holds the rest of the tree as JSON, tensors replaced by references. A SHA-256 digest over
every tensor's bytes, stored in the metadata, turns a truncated or bit-flipped file into a clear
``FileFormatError`` instead of a silently wrong resume. Files are written through ``nlp182.io``
(temporary file, fsync, rename), so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from nlp182.errors import FileFormatError, InvalidInputError
from nlp182.io import atomic_write_bytes, check_input_file

FORMAT = "nlp182-checkpoint-v1"
_NAME = re.compile(r"^step-(\d{9})\.safetensors$")


class _Tensors:
    """The tensors of a checkpoint being written, keyed ``t0, t1, ...``. A tensor met twice (tied
    weights: one parameter under two names, as a state dict gives it) is stored once and comes back
    as one tensor; a different view of memory already stored (a slice of it) is stored as a copy,
    since a safetensors file holds no two tensors that share memory."""

    def __init__(self) -> None:
        self.by_key: dict[str, torch.Tensor] = {}
        self._keys: dict[tuple, str] = {}
        self._memory: set[int] = set()
        self._held: list[torch.Tensor] = []  # every tensor keyed by address lives while we write

    def add(self, tensor: torch.Tensor) -> str:
        """The key ``tensor`` is stored under (its own, or the one it was stored under before)."""
        same = (tensor.untyped_storage().data_ptr(), tensor.device, tensor.storage_offset(),
                tuple(tensor.shape), tensor.stride(), tensor.dtype)  # fmt: skip
        if tensor.numel() and same in self._keys:
            return self._keys[same]
        self._held.append(tensor)  # a freed temporary's address could be another tensor's next
        stored = tensor.detach().to("cpu").contiguous()
        memory = stored.untyped_storage().data_ptr()
        if stored.numel() and memory in self._memory:
            stored = stored.clone()
        self._memory.add(stored.untyped_storage().data_ptr())
        key = self._keys[same] = f"t{len(self.by_key)}"
        self.by_key[key] = stored
        return key


def _encode(obj: Any, tensors: _Tensors) -> Any:
    """Turn ``obj`` into JSON-ready data, moving tensors into ``tensors`` and keeping key types."""
    if isinstance(obj, torch.Tensor):
        if obj.layout == torch.sparse_coo:  # a momentum buffer of sparse gradients
            # kept as it is, duplicates and all: coalescing sums them in another order, and a
            # resumed run would drift from the one it continues by float rounding
            parts = [tensors.add(obj._indices()), tensors.add(obj._values())]
            return {"__sparse__": parts, "size": list(obj.shape), "coalesced": obj.is_coalesced()}
        return {"__tensor__": tensors.add(obj)}
    if isinstance(obj, np.ndarray):
        # torch lacks most unsigned dtypes: integers travel as int64 and are cast back on load.
        wide = obj.astype(np.int64) if obj.dtype.kind in "iu" else obj
        key = tensors.add(torch.from_numpy(np.ascontiguousarray(wide)))
        return {"__ndarray__": key, "dtype": obj.dtype.str}
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise InvalidInputError(f"cannot store a {type(obj).__name__} in a checkpoint; use tensors, numbers, "
                            "strings, lists, tuples and dicts")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__sparse__" in obj:
            indices, values = (tensors[key] for key in obj["__sparse__"])
            coalesced = obj.get("coalesced")
            try:  # checked: indices out of range would read past the values
                tensor = torch.sparse_coo_tensor(indices, values, obj["size"], check_invariants=True,
                                                 is_coalesced=bool(coalesced))
                return tensor.coalesce() if coalesced is None else tensor  # None: stored coalesced
            except (RuntimeError, TypeError) as exc:
                raise FileFormatError(f"a sparse tensor is inconsistent: {exc}") from exc
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy().astype(np.dtype(obj["dtype"]))
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__dict__"]}
    return obj


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    sha = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key]
        sha.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return sha.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (nested dicts/lists/tuples of tensors, arrays and JSON scalars) atomically."""
    tensors = _Tensors()
    tree = _encode(state, tensors)
    metadata = {"format": FORMAT, "tree": json.dumps(tree), "sha256": _digest(tensors.by_key)}
    atomic_write_bytes(path, st_save(tensors.by_key, metadata=metadata))
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; tensors come back on the CPU.

    Raises ``MissingFileError`` when the file is absent and ``FileFormatError`` when it is truncated,
    corrupt or not a checkpoint, naming the file so the user can delete it and resume from the one
    before.
    """
    target = check_input_file(path, "checkpoint")
    data = target.read_bytes()
    hint = ("delete it to resume from the previous checkpoint (with none left, the run starts over), "
            "or start a new run in another out_dir")
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
    except (SafetensorError, ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"checkpoint {target} is truncated or corrupt ({exc}); {hint}") from exc
    if metadata.get("format") != FORMAT:
        raise FileFormatError(f"{target} is not an nlp182 checkpoint (format {metadata.get('format')!r})")
    if _digest(tensors) != metadata.get("sha256"):
        raise FileFormatError(f"checkpoint {target} failed its SHA-256 check (corrupt data); {hint}")
    try:
        return _decode(json.loads(metadata["tree"]), tensors)
    except (FileFormatError, KeyError, TypeError, ValueError, RecursionError) as exc:  # nesting: crafted
        raise FileFormatError(f"checkpoint {target} holds a damaged state tree ({exc}); {hint}") from exc


def checkpoint_path(out_dir: str | os.PathLike[str], step: int) -> Path:
    """Where the checkpoint taken after optimizer step ``step`` lives."""
    return Path(out_dir) / "checkpoints" / f"step-{step:09d}.safetensors"


def list_checkpoints(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Checkpoints in ``out_dir/checkpoints``, oldest first."""
    folder = Path(out_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def prune_checkpoints(out_dir: str | os.PathLike[str], keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints."""
    for old in list_checkpoints(out_dir)[:-keep_last]:
        old.unlink(missing_ok=True)


def save_model_weights(path: str | os.PathLike[str], model: torch.nn.Module) -> None:
    """Write ``model``'s state dict (weights and buffers, on the CPU) as a plain safetensors file, atomically.

    This is a run folder's ``model.safetensors``: readable by any safetensors tool, unlike a
    checkpoint, which also carries optimizer and RNG state. Tied weights (one parameter under two
    names) are written under each name, as a file of safetensors shares no memory.
    """
    tensors, memory = {}, set()
    for name, tensor in model.state_dict().items():
        stored = tensor.detach().cpu().contiguous()
        if stored.numel() and stored.untyped_storage().data_ptr() in memory:  # tied: its own copy
            stored = stored.clone()
        memory.add(stored.untyped_storage().data_ptr())
        tensors[name] = stored
    atomic_write_bytes(path, st_save(tensors))


def load_model_weights(path: str | os.PathLike[str], model: torch.nn.Module) -> None:
    """Load a file written by :func:`save_model_weights` into ``model``, with a clear error when the
    file is missing, damaged or holds another model's weights."""
    target = check_input_file(path, missing_hint="; did training finish?")
    try:
        model.load_state_dict(st_load(target.read_bytes()))
    except (SafetensorError, RuntimeError) as exc:
        raise FileFormatError(f"{target} does not hold this model's weights: {exc}") from exc


def check_model_shapes(path: str | os.PathLike[str], build: Callable[[], torch.nn.Module]) -> None:
    """Refuse the weights file ``path`` unless it declares exactly the tensors (names and shapes) of the
    state dict of the model ``build()`` returns, without allocating that model or reading the file's data.

    ``build`` runs on the meta device (shapes, no memory) and the file's shapes come from its header
    alone. A run folder's ``config.json`` decides the model's size: a damaged or hand-edited one
    (``hidden_size`` 16000 beside weights of size 32) would otherwise allocate gigabytes before the
    mismatch shows. safetensors refuses a header whose tensors the file's bytes do not cover, so a
    model that passes is no larger than the file.

    Raises:
        MissingFileError: ``path`` does not exist.
        FileFormatError: the file is not safetensors, or a tensor is missing, extra or of another
            shape, naming the file, the tensor, the shape the config gives and the shape the file holds.
    """
    target = check_input_file(path, missing_hint="; did training finish?")
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in build().state_dict().items()}
    try:
        with safe_open(target, "pt") as weights:
            names = weights.keys()  # a safe_open handle is not iterable
            held = {name: tuple(weights.get_slice(name).get_shape()) for name in names}
    except (SafetensorError, OSError, ValueError) as exc:
        raise FileFormatError(f"{target} is not a safetensors weights file: {exc}") from exc
    for name, shape in expected.items():
        if name not in held:
            raise FileFormatError(f"{target} lacks tensor {name}, of shape {shape} by the run's config")
        if held[name] != shape:
            raise FileFormatError(
                f"{target}: tensor {name} has shape {shape} by the run's config but {held[name]} in the "
                "file; config.json and the weights are from different models"
            )
    extra = sorted(held.keys() - expected.keys())
    if extra:
        name = extra[0]
        raise FileFormatError(f"{target} holds tensor {name} {held[name]}, which the run's config lacks")


def build_and_load_weights(
    path: str | os.PathLike[str], build: Callable[[], torch.nn.Module]
) -> torch.nn.Module:
    """The model ``build()`` returns, on the CPU, holding the weights of ``path`` (a file written by
    :func:`save_model_weights`), built only once :func:`check_model_shapes` found the file's tensors
    to be that model's: the config a model is built from cannot make it allocate more than the file holds."""
    check_model_shapes(path, build)
    model = build()
    load_model_weights(path, model)
    return model
