"""Writes the small .npz fixtures used by tests/cli/test_cli.sh (run with python3-numpy;
CI uses the committed files). A 6-node, 2-class graph, valid, plus one defect per file."""
import io
import zipfile

import numpy as np


def valid():
    # Undirected path 0-1-2-3-4-5 stored in both directions, CSR by row.
    nbrs = {0: [1], 1: [0, 2], 2: [1, 3], 3: [2, 4], 4: [3, 5], 5: [4]}
    indptr = np.cumsum([0] + [len(nbrs[i]) for i in range(6)]).astype(np.int64)
    indices = np.concatenate([nbrs[i] for i in range(6)]).astype(np.int64)
    x = np.eye(6, 4, dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1, 1], dtype=np.int64)
    train = np.array([1, 0, 0, 1, 0, 0], dtype=bool)
    val = np.array([0, 1, 0, 0, 1, 0], dtype=bool)
    test = np.array([0, 0, 1, 0, 0, 1], dtype=bool)
    return dict(indptr=indptr, indices=indices, x=x, y=y, train_mask=train,
                val_mask=val, test_mask=test, num_classes=np.array(2, dtype=np.int64))


def save(name, arrays):
    np.savez_compressed(name, **arrays)


save("tiny_valid.npz", valid())

a = valid(); a["x"] = a["x"].astype(np.complex64); save("wrong_dtype.npz", a)
a = valid(); a["indices"][3] = 17; save("index_out_of_range.npz", a)
a = valid(); a["val_mask"][0] = True; save("overlapping_masks.npz", a)
a = valid(); a["y"][4] = 5; save("label_out_of_range.npz", a)
a = valid(); del a["y"]; save("missing_labels.npz", a)

blob = open("tiny_valid.npz", "rb").read()
open("truncated.npz", "wb").write(blob[: len(blob) // 2])
open("not_a_zip.npz", "wb").write(b"this is not a zip archive\n")
