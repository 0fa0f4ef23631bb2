"""Singular values of checkpoint matrices by numpy: an independent reference for t2's SVD.

usage: svd_reference.py CHECKPOINT_DIR NAME [NAME ...]
prints {"NAME": [s_0, s_1, ...], ...} (float64 SVD of the stored float32 matrix, descending).
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    weights = load_file(str(Path(sys.argv[1]) / "model.safetensors"))
    out = {}
    for name in sys.argv[2:]:
        # float64 so that the reference's own rounding is far below the tolerance tested.
        matrix = weights[name].astype(np.float64)
        out[name] = np.linalg.svd(matrix, compute_uv=False).tolist()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
