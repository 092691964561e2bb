"""Candidates for the unfamiliar-input check beyond calibrate's own methods, judged photo against photo (issue 38):
AUROC of photos-other (261) against the 783 photos of the ten classes, the paired 90% interval against the top
probability, the shares flagged on the unseen halves at a threshold that keeps 95% of the test split's choosing
half and 90% of a half of the photos under it, and the test split's and made-up inputs' shares at it.
The research behind docs/unfamiliar.md's candidate table; calibrate measures and chooses among the shipped ones.

    python scripts/unfamiliar_candidates/cache_views.py "crop, lanczos, softened"   # from the repository root
    python scripts/unfamiliar_candidates/judge.py crop_lanczos_softened

CANDIDATES_CACHE (default /tmp/cifarnets-candidates) holds the cached answers between the two.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from cifarnets.models import KEYS as ALL
from cifarnets.unfamiliar.measure import folds
from cifarnets.unfamiliar.scores import FEATURES, ViewOutputs, auroc, fit, score

torch.set_num_threads(2)
tag = sys.argv[1] if len(sys.argv) > 1 else "crop_box"
out = Path(os.environ.get("CANDIDATES_CACHE", "/tmp/cifarnets-candidates"))
KEYS = [k for k in ALL if (out / f"views_{k}_{tag}.pt").exists() and (out / f"views_{k}.pt").exists()]
labels = np.load(out / "photo_labels.npy")
V = {}
for key in KEYS:
    base = torch.load(out / f"views_{key}.pt", weights_only=False)
    ph = torch.load(out / f"views_{key}_{tag}.pt", weights_only=False)
    v = {n: ViewOutputs(*base[n]) for n in ("fit", "scale", "choose", "held_out")}
    v |= {n: ViewOutputs(*ph[n]) for n in ("photos", "other", "strange0", "strange1")}
    V[key] = (v, base["labels"], ph["kinds"])
PARTS = ("choose", "held_out", "photos", "other", "strange0", "strange1")

def knn(train_f, f, k=1):
    a = torch.nn.functional.normalize(train_f.double().mean(0), dim=1)
    b = torch.nn.functional.normalize(f.double().mean(0), dim=1)
    sims = b @ a.T
    return 1 - sims.topk(k, dim=1).values[:, -1]

S = {}  # key -> name -> part -> scores
probs = {}
for key, (v, lab, _kinds) in V.items():
    fitted = fit(v["fit"], lab["fit"], v["scale"], 10)
    s = {}
    for m in ("msp", "energy", "mahalanobis", "stages"):
        s[m] = {p: score(m, v[p], fitted).numpy() for p in PARTS}
    for k in (1, 10):
        s[f"knn{k}"] = {p: knn(v["fit"].layers[FEATURES], v[p].layers[FEATURES], k).numpy() for p in PARTS}
    # relative Mahalanobis (Ren et al., 2021): the class distance minus a class-free Gaussian's
    from cifarnets.unfamiliar.scores import fit_gaussians
    ftr = v["fit"].layers[FEATURES]
    g = fitted[FEATURES]
    g0 = fit_gaussians(ftr, torch.zeros(ftr.shape[1], dtype=torch.long), 1)
    def rmd(x, g=g, g0=g0):
        d = x.double()[..., None, :] - g.means
        sq = torch.einsum("...cd,de,...ce->...c", d, g.precision, d)
        d0 = x.double()[..., None, :] - g0.means
        sq0 = torch.einsum("...cd,de,...ce->...c", d0, g0.precision, d0)
        return (sq - sq0).min(-1).values.mean(0)
    s["relative mahalanobis"] = {p: rmd(v[p].layers[FEATURES]).numpy() for p in PARTS}
    for T in (2.0, 4.0):
        s[f"msp T={T:g}"] = {p: (1 - torch.softmax(v[p].logits.double() / T, -1).mean(0).max(-1).values).numpy()
                             for p in PARTS}
    s["views: top-1 changes"] = {p: (1 - (v[p].logits.argmax(-1) == v[p].answer.argmax(-1)).double().mean(0)).numpy()
                                 for p in PARTS}
    s["entropy"] = {p: (-(v[p].answer.double().clamp_min(1e-12).log() * v[p].answer.double()).sum(-1)).numpy()
                    for p in PARTS}
    s["maxlogit"] = {p: (-v[p].logits.double().mean(0).max(-1).values).numpy() for p in PARTS}
    S[key] = s
    probs[key] = {p: v[p].answer.double() for p in PARTS}
# the four together
ens = {p: torch.stack([probs[k][p] for k in KEYS]).mean(0) for p in PARTS}
ens_msp = {p: (1 - ens[p].max(1).values).numpy() for p in PARTS}
agree = {p: 1 - np.mean([(probs[k][p].argmax(1) == ens[p].argmax(1)).numpy() for k in KEYS], 0) for p in PARTS}
def z(s, ref="choose"):
    m, sd = s[ref].mean(), s[ref].std()
    return {p: (x - m) / sd for p, x in s.items()}
def zsum(names):
    out = {p: 0 for p in PARTS}
    for k in KEYS:
        for n in names:
            zz = z(S[k][n])
            out = {p: out[p] + zz[p] for p in PARTS}
    return out
four_energy = zsum(["energy"])
four_maha = zsum(["mahalanobis"])
four_knn = zsum(["knn10"])
four_zmsp = zsum(["msp"])
ent = lambda q: -(q.clamp_min(1e-12).log() * q).sum(-1)
ens_ent = {p: ent(ens[p]).numpy() for p in PARTS}
mutual = {p: (ent(ens[p]) - torch.stack([ent(probs[k][p]) for k in KEYS]).mean(0)).numpy() for p in PARTS}
for key in KEYS:
    s = S[key]
    s["four: entropy"] = ens_ent
    s["raw: (msp + four: msp) / 2"] = {p: (s["msp"][p] + ens_msp[p]) / 2 for p in PARTS}
    s["raw: entropy + four: entropy"] = {p: s["entropy"][p] + ens_ent[p] for p in PARTS}
    s["four: mutual information"] = mutual
    s["four: msp"] = ens_msp
    s["four: sum of z(energy)"] = four_energy
    s["four: sum of z(msp)"] = four_zmsp
    s["four: sum of z(mahalanobis)"] = four_maha
    s["four: sum of z(knn10)"] = four_knn
    s["four: disagreement"] = agree
    for a, b in [("msp", "mahalanobis"), ("msp", "knn10"), ("energy", "mahalanobis"), ("msp", "stages"),
                 ("four: msp", "mahalanobis"), ("four: msp", "knn10"), ("four: msp", "knn1"), ("four: msp", "stages"),
                 ("four: msp", "msp"), ("four: msp", "energy"), ("four: msp", "four: sum of z(mahalanobis)"),
                 ("four: msp", "four: sum of z(knn10)"), ("four: sum of z(energy)", "four: sum of z(knn10)"),
                 ("four: msp", "relative mahalanobis"), ("four: entropy", "four: mutual information"),
                 ("four: msp", "views: top-1 changes"), ("msp", "relative mahalanobis"),
                 ("four: entropy", "entropy"), ("four: entropy", "relative mahalanobis")]:
        za, zb = z(s[a]), z(s[b])
        s[f"{a} + {b}"] = {p: za[p] + zb[p] for p in PARTS}

rng = np.random.default_rng(0)
B = 2000
ni, no = len(labels), len(S[KEYS[0]]["msp"]["other"])
# stratified draws: in-class within each class, others whole
cls = [np.flatnonzero(labels == c) for c in np.unique(labels)]
draw_in = np.stack([np.concatenate([c[rng.integers(0, len(c), len(c))] for c in cls]) for _ in range(B)])
draw_out = rng.integers(0, no, (B, no))

def fast_auroc(f, u):
    allv = np.concatenate([f, u])
    r = allv.argsort().argsort() + 1.0  # ties rare for continuous scores
    return (r[len(f):].sum() - len(u) * (len(u) + 1) / 2) / (len(u) * len(f))

def boot(f, u):
    return np.array([fast_auroc(f[draw_in[i]], u[draw_out[i]]) for i in range(B)])

res = {}
for key in KEYS:
    s = S[key]
    base_b = {b: boot(s[b]["photos"], s[b]["other"]) for b in ("msp", "stages")}
    rows = {}
    for name, x in s.items():
        a = auroc(x["photos"], x["other"])
        bb = boot(x["photos"], x["other"])
        rows[name] = {"auroc": a, "vs_msp": [float(np.quantile(bb - base_b["msp"], q)) for q in (0.05, 0.95)],
                      "vs_stages": [float(np.quantile(bb - base_b["stages"], q)) for q in (0.05, 0.95)],
                      "auroc_test_vs_strange": auroc(x["held_out"], x["strange1"])}
        # threshold: test 95% quantile of choose, raised to keep 90% of a fold of photos; counted on the other fold
        t_test = np.quantile(x["choose"], 0.95, method="higher")
        fo = folds(labels)
        fl_in = fl_out = 0
        for k in (0, 1):
            t = max(t_test, np.quantile(x["photos"][fo == k], 0.9, method="higher"))
            fl_in += (x["photos"][fo != k] > t).sum()
            # photos-other: split in two by position, each half counted against the other fold's threshold
            oth = np.arange(no) % 2 != k
            fl_out += (x["other"][oth] > t).sum()
        t_all = max(t_test, np.quantile(x["photos"], 0.9, method="higher"))
        rows[name] |= {"in_unseen": fl_in / ni, "other_unseen": fl_out / no,
                       "test_flagged": float((x["held_out"] > t_all).mean()),
                       "strange_flagged": float((x["strange1"] > t_all).mean()),
                       "threshold_raised": bool(t_all > t_test)}
    res[key] = rows
json.dump(res, open(out / f"ood_{tag}.json", "w"), indent=1)
names = list(res[KEYS[0]])
print(f"{'candidate':32}" + "".join(f"{k:>28}" for k in KEYS))
for n in names:
    print(f"{n:32}" + "".join(f"  {res[k][n]['auroc']:.3f} "
                            f"[{res[k][n]['vs_msp'][0]:+.2f},{res[k][n]['vs_msp'][1]:+.2f}] "
                            f"{res[k][n]['in_unseen']:.0%}/{res[k][n]['other_unseen']:.0%}" for k in KEYS))
print("\ntest held-out flagged / strange flagged at the all-photos threshold")
for n in names:
    print(f"{n:32}" + "".join(f"{res[k][n]['test_flagged']:>14.1%}{res[k][n]['strange_flagged']:>14.0%}" for k in KEYS))
