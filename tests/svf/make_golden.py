"""Golden SVF data from the paper's formulas, computed independently of t2 with torch.

usage: make_golden.py --out DIR

Writes raw little-endian float32 arrays (*.f32) and DIR/manifest.json:
  compose: per random matrix W (seeded), several z vectors and
           W' = U diag(σ ⊙ z) Vᵀ · (Σσ / Σσz)   (normalization "nuclear"), or without the
           last factor (normalization "none"), from torch.linalg.svd in float64.
  mixture: K experts (one z per matrix name), global α and per-layer α (not normalised, as
           a caller would pass them) and z_mix = Σₖ (αₖ / Σα) zₖ, in float64.
Everything is computed in float64 and stored as float32, so the reference's own rounding is
one float32 ulp, far below the tolerances the C++ tests use.
"""
import argparse
import json
import pathlib

import numpy as np
import torch

SHAPES = [(64, 96), (96, 64), (33, 17)]
MIX_LAYERS = 3
MIX_KINDS = [("mlp.gate_proj", 17), ("mlp.up_proj", 17), ("mlp.down_proj", 11)]
MIX_EXPERTS = 3


def save(path: pathlib.Path, array) -> None:
    np.ascontiguousarray(np.asarray(array, dtype="<f4")).tofile(path)


def compose(w: torch.Tensor, z: torch.Tensor, normalization: str) -> torch.Tensor:
    """The reference's W' from the float64 thin SVD of W."""
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    scale = s * z
    out = u @ torch.diag(scale) @ vh
    if normalization == "nuclear":
        out = out * (s.sum() / scale.sum())
    return out


def compose_cases(out: pathlib.Path, gen: torch.Generator):
    entries = []
    for i, (n, m) in enumerate(SHAPES):
        # The matrix t2 sees is the float32 one: decompose exactly what is stored.
        w32 = torch.randn(n, m, generator=gen, dtype=torch.float64).float()
        w = w32.double()
        r = min(n, m)
        save(out / f"w{i}.f32", w32.numpy())
        zs = {
            "sigmoid": torch.sigmoid(0.1 + 0.5 * torch.randn(r, generator=gen, dtype=torch.float64)),
            "uniform": torch.rand(r, generator=gen, dtype=torch.float64) * 2,
            "sparse": (torch.rand(r, generator=gen, dtype=torch.float64) > 0.5).double() + 0.01,
        }
        cases = []
        for label, z in zs.items():
            z = z.float().double()  # stored as float32: the reference uses those values
            save(out / f"w{i}_{label}_z.f32", z.numpy())
            for normalization in ("nuclear", "none"):
                file = f"w{i}_{label}_{normalization}.f32"
                save(out / file, compose(w, z, normalization).numpy())
                cases.append({"z": f"w{i}_{label}_z.f32", "normalization": normalization,
                              "w_prime": file})
        entries.append({"name": f"w{i}", "shape": [n, m], "w": f"w{i}.f32", "cases": cases})
    return entries


def mixture_cases(out: pathlib.Path, gen: torch.Generator):
    names, lengths = [], []
    for layer in range(MIX_LAYERS):
        for kind, r in MIX_KINDS:
            names.append(f"model.layers.{layer}.{kind}.weight")
            lengths.append(r)
    experts = []
    for k in range(MIX_EXPERTS):
        zs = [torch.rand(r, generator=gen, dtype=torch.float64).float().double() for r in lengths]
        files = []
        for j, z in enumerate(zs):
            files.append(f"mix_e{k}_{j}.f32")
            save(out / files[-1], z.numpy())
        experts.append((zs, files))

    def mix(alpha_rows):
        result = []
        for j, name in enumerate(names):
            layer = int(name.split(".")[2])
            a = torch.tensor(alpha_rows[layer if len(alpha_rows) > 1 else 0], dtype=torch.float64)
            a = a / a.sum()
            result.append(sum(a[k] * experts[k][0][j] for k in range(MIX_EXPERTS)))
        return result

    global_alpha = [0.2, 1.3, 0.5]
    per_layer_alpha = [[1.0, 0.0, 0.0], [0.25, 0.25, 0.5], [0.0, 3.0, 1.0]]
    mixes = {}
    for label, rows in (("global", [global_alpha]), ("per_layer", per_layer_alpha)):
        files = []
        for j, z in enumerate(mix(rows)):
            files.append(f"mix_{label}_{j}.f32")
            save(out / files[-1], z.numpy())
        mixes[label] = files
    return {
        "names": names,
        "lengths": lengths,
        "experts": [files for _, files in experts],
        "global": {"alpha": global_alpha, "z": mixes["global"]},
        "per_layer": {"alpha": [a for row in per_layer_alpha for a in row],
                      "num_layers": MIX_LAYERS, "z": mixes["per_layer"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=pathlib.Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(20250106)
    manifest = {"compose": compose_cases(args.out, gen), "mixture": mixture_cases(args.out, gen)}
    # The manifest last: its presence means every array beside it is complete.
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
