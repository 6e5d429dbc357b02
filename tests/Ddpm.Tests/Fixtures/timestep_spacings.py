"""Writes timestep-spacings.json: diffusers' DDIM/DDPM timestep lists (timestep_spacing linspace, leading, trailing;
steps_offset 0), computed with numpy exactly as diffusers' set_timesteps does, including np.round's halves-to-even
and np.arange's float stride. Run with Debian's python3-numpy: /usr/bin/python3 timestep_spacings.py > timestep-spacings.json
The C# tests read the JSON; they never run Python."""
import json
import numpy as np

def spacings(T, n):
    return {
        "linspace": np.linspace(0, T - 1, n).round()[::-1].astype(np.int64).tolist(),
        "leading": (np.arange(0, n) * (T // n)).round()[::-1].astype(np.int64).tolist(),
        "trailing": (np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1).tolist(),
    }

cases = [(1000, n) for n in (1, 3, 7, 10, 16, 50, 999, 1000)] + [(37, n) for n in (1, 3, 7, 10, 36, 37)]
print(json.dumps({"numpy": np.__version__, "cases": [{"T": T, "n": n, **spacings(T, n)} for T, n in cases]}))
