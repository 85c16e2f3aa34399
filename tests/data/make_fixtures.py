#!/usr/bin/python3
"""Regenerates the NPY / NPZ test fixtures of tests/io/test_npz.cpp.

Run from anywhere with the system Python and NumPy (python3-numpy):
    /usr/bin/python3 tests/data/make_fixtures.py
CI does not run it; the outputs are committed. Every value is deterministic (np.arange);
only the zip timestamps differ between runs.
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def arrays():
    return {
        "b1": np.array([True, False, True, True]),
        "u1": np.arange(250, 256, dtype="|u1"),  # 250..255
        "i1": np.arange(-3, 3, dtype="|i1"),  # -3..2
        "i2": np.arange(-300, -294, dtype="<i2"),  # -300..-295
        "i4": np.arange(6, dtype="<i4").reshape(2, 3),  # [[0, 1, 2], [3, 4, 5]]
        "i8": np.arange(10, dtype="<i8") - 3,  # -3..6
        "u2": np.arange(65530, 65536, dtype="<u2"),  # 65530..65535
        "u4": np.arange(4294967290, 4294967296, dtype="<u4"),  # 2^32-6 .. 2^32-1
        "u8": np.arange(4, dtype="<u8") * (2**61),  # k * 2^61, k = 0..3
        "f2": np.arange(4, dtype="<f2") / np.float16(2),  # 0, 0.5, 1, 1.5
        "f4": np.arange(12, dtype="<f4").reshape(3, 4) / np.float32(4),  # k / 4
        # Fortran order: element [i, j, k] = 12 i + 4 j + k.
        "f8": np.asfortranarray(np.arange(24, dtype="<f8").reshape(2, 3, 4)),
        "scalar": np.array(7, dtype="<i8"),  # 0-d
        "empty": np.zeros((0, 3), dtype="<f4"),
    }


def main():
    a = arrays()
    assert a["f8"].flags["F_CONTIGUOUS"] and not a["f8"].flags["C_CONTIGUOUS"]
    # savez_compressed: deflated members with zip64 extra fields (force_zip64=True).
    np.savez_compressed(os.path.join(HERE, "numpy_compressed.npz"), **a)
    # savez: stored (uncompressed) members.
    np.savez(os.path.join(HERE, "numpy_stored.npz"), **a)
    # Unsupported inputs.
    np.savez(os.path.join(HERE, "big_endian.npz"), a=np.arange(3, dtype=">i4"))
    np.savez(os.path.join(HERE, "complex.npz"), a=np.zeros(2, dtype="<c8"))
    # NPY format versions 2.0 and 3.0 (uint32 header length).
    for version in [(2, 0), (3, 0)]:
        name = "v%d.npy" % version[0]
        with open(os.path.join(HERE, name), "wb") as f:
            np.lib.format.write_array(f, np.arange(6, dtype="<i4").reshape(3, 2),
                                      version=version)


if __name__ == "__main__":
    main()
