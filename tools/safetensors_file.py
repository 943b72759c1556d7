"""Writes safetensors files without the safetensors package (Debian does not ship it).

The layout follows the published safetensors format: an 8-byte little-endian unsigned header
length N, then N bytes of UTF-8 JSON mapping every tensor name to {"dtype", "shape",
"data_offsets": [begin, end]} (byte offsets into the data that follows the header) plus an
optional "__metadata__" map of strings to strings, padded with spaces to a multiple of 8 bytes,
then the tensors' raw little-endian bytes, one after the other, in row-major order.
"""

import json
import struct

import numpy as np

DTYPE_NAMES = {np.dtype("<f4"): "F32"}


def safetensors_header(tensors, metadata=None):
    """The header bytes (length prefix included) for tensors {name: array}, laid out in order."""
    header = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, array in tensors.items():
        dtype = np.dtype(array.dtype).newbyteorder("<")
        if dtype not in DTYPE_NAMES:
            raise ValueError("%s: dtype %s has no safetensors writer here" % (name, array.dtype))
        header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.size * dtype.itemsize]}
        offset += array.size * dtype.itemsize
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_safetensors(stream, tensors, metadata=None):
    """Writes tensors {name: array} (float32) and metadata {str: str} to an open binary stream."""
    stream.write(safetensors_header(tensors, metadata))
    for array in tensors.values():
        stream.write(np.ascontiguousarray(array, dtype="<f4").data.cast("B"))
