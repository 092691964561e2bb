"""Cache every network's ViewOutputs on calibrate's parts, the strange inputs, the 783 photos and photos-other.
usage (from the repository root): python scripts/unfamiliar_candidates/cache_views.py PREPARATION
The train/test parts are cached once, the photo parts per preparation; judge.py reads them (its docstring)."""
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cifarnets.data import images, sources
from cifarnets.data.images import EXTENSIONS, decode_image, read_photos
from cifarnets.data.loader import batch, normalize
from cifarnets.models import KEYS
from cifarnets.paths import other_photos_folder, photos_folders
from cifarnets.store import checkpoints as ckpt
from cifarnets.unfamiliar import inputs, measure

torch.set_num_threads(2)
prep = sys.argv[1] if len(sys.argv) > 1 else images.PREPARATION
tag = prep.replace(", ", "_").replace(" ", "")
out = Path(os.environ.get("CANDIDATES_CACHE", "/tmp/cifarnets-candidates"))
out.mkdir(parents=True, exist_ok=True)
ds = sources.load(os.environ.get("CIFARNETS_DATA") or "../shared/data/cifar10-jpeg.tar.gz", verbose=False)
p = measure.parts(ds)
pics, labels, names = read_photos(photos_folders(), ds.classes)
others = sorted(f for f in other_photos_folder().iterdir() if f.suffix.lower().lstrip(".") in EXTENSIONS)
other_pics = [decode_image(f.read_bytes(), f.name) for f in others]
xp = batch([images.to_array(x, preparation=prep) for x in pics])
xo = batch([images.to_array(x, preparation=prep) for x in other_pics])
strange = {}
for seed in (0, 1):
    px, kinds = inputs.generate(seed)
    strange[seed] = (px, kinds)
np.save(out / "photo_labels.npy", labels)
(out / "photo_names.txt").write_text("\n".join(names))
(out / "other_names.txt").write_text("\n".join(f.name for f in others))
for key in KEYS:
    model, config = ckpt.load_checkpoint(Path("checkpoints") / key, torch.device("cpu"), expected_key=key)[:2]
    t = time.time()
    base = out / f"views_{key}.pt"
    if not base.exists():
        v = {n: measure.view_outputs_in_batches(model, normalize(x)) for n, (x, _) in p.items()}
        torch.save({n: (x.logits, x.layers) for n, x in v.items()} | {"labels": {n: y for n, (_, y) in p.items()}},
                   base)
    v = {"photos": measure.view_outputs_in_batches(model, xp), "other": measure.view_outputs_in_batches(model, xo)}
    for seed, (px, _kinds) in strange.items():
        v[f"strange{seed}"] = measure.view_outputs_in_batches(model, batch(list(px)))
    torch.save({n: (x.logits, x.layers) for n, x in v.items()} | {"kinds": {s: k for s, (_, k) in strange.items()}},
               out / f"views_{key}_{tag}.pt")
    print(key, f"{time.time() - t:.0f}s", flush=True)
