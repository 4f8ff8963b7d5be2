"""Import clipsim at the declared minimum versions, then train, sweep, save and load once.

Run by .ci/min_versions.sh inside a venv holding exactly those versions.
"""

import sys
from importlib import metadata
from pathlib import Path

import clipsim
from clipsim import io, sweep

out = Path(sys.argv[1])
cfg = clipsim.RunConfig.from_dict({
    "data": {"num_concepts": 4, "image_dim": 8, "text_dim": 8, "image_unique_dim": 2,
             "text_unique_dim": 2},
    "model": {"embed_dim": 4},
    "train": {"steps": 20, "batch_size": 16, "log_every": 10},
    "eval": {"num_samples": 64, "top_r": [1, 2]},
})
result = clipsim.train(cfg)
report = clipsim.evaluate(result)
io.save_run(out / "run", result, report=report)
again = io.load_run(out / "run")
assert again.config == cfg
spec = sweep.SweepSpec(name="min", base=cfg, grid={"objective.temperature": [0.1, 0.5]},
                       seeds=[0, 1])
df = sweep.run(spec, out=out / "sweep", quiet=True)
table = sweep.load(out / "sweep")
assert len(table) == len(df) and table["final"].sum() == 4
print(clipsim.summarize(table[table["final"]], by="objective.temperature",
                        metrics=["zs_accuracy"]).to_string())
print("ok:", ", ".join(f"{p} {metadata.version(p)}" for p in
                       ("jax", "jaxlib", "numpy", "scipy", "optax", "pandas", "pyarrow",
                        "matplotlib", "tomli-w")))
