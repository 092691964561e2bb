"""The sentences the Stress test page writes from stress.json, as Why they differ writes its own
(analysis/why_sentences.py): every number and every "more" or "less" comes from the stored measurements.
"""

from __future__ import annotations

from ..models import label
from ..prose import listing
from .corruptions import LEFT_OUT, NAMES, title
from .measure import mean_accuracy

EQUAL_CLEAN = 0.02  # clean accuracies within 2 points count as "about equal"
MARGIN = 0.01  # a share of clean accuracy kept under corruption must differ by a point to count as a difference,
SAMPLE_IMAGES = 2  # and by more than two images' worth of the sample it was measured on
# The anchor: CIFAR-10-C error with standard training, AugMix (Hendrycks et al., ICLR 2020), Table 1.
ANCHOR = {"DenseNet-BC": 0.307, "WideResNet-40-2": 0.269}
COMPARISONS = (  # (network, its baseline, what the difference between them is)
    ("densenet", "resnet", "DenseNet's dense connections (feature reuse)"),
    ("se_resnet", "resnet", "SE blocks (channel gating)"),
    ("resnet", "resnet_plain", "shortcuts"),
)


def _pct(v: float) -> str:
    return f"{v:.1%}"


def table(record: dict) -> list[dict]:
    """One row per network: clean accuracy, mean accuracy under corruption, the drop, the CIFAR-10-C error."""
    rows = []
    for key, n in record["networks"].items():
        mean = mean_accuracy(n)
        rows.append({"network": label(key), "clean": n["clean"], "corrupted (mean)": mean, "drop": n["clean"] - mean,
                     "CIFAR-10-C error": 1 - mean, "kept": mean / n["clean"] if n["clean"] else 0.0})
    return rows


def compare(record: dict, key: str, base: str) -> dict | None:
    """How robust `key` is against `base`: their clean and corrupted accuracies, the share of clean accuracy
    each keeps, and the verdict ('more', 'less' or 'as' robust). None when either was not measured."""
    nets = record["networks"]
    if key not in nets or base not in nets or not nets[key]["clean"] or not nets[base]["clean"]:
        return None
    out = {"clean": nets[key]["clean"], "base_clean": nets[base]["clean"],
           "mean": mean_accuracy(nets[key]), "base_mean": mean_accuracy(nets[base])}
    out["kept"], out["base_kept"] = out["mean"] / out["clean"], out["base_mean"] / out["base_clean"]
    gap, out["margin"] = out["kept"] - out["base_kept"], margin(record)
    out["verdict"] = "more" if gap > out["margin"] else "less" if gap < -out["margin"] else "as"
    out["equal_clean"] = abs(out["clean"] - out["base_clean"]) <= EQUAL_CLEAN
    return out


def margin(record: dict) -> float:
    """The least difference in shares kept that the text calls a difference, for this record's sample size."""
    return max(MARGIN, SAMPLE_IMAGES / record["images"])


def _comparison_sentence(record: dict, key: str, base: str, what: str) -> str:
    c = compare(record, key, base)
    if c is None:
        return ""
    a, b = label(key), label(base)
    clean = (f"at about equal clean accuracy ({_pct(c['clean'])} and {_pct(c['base_clean'])})" if c["equal_clean"]
             else f"though not at equal clean accuracy ({_pct(c['clean'])} against {_pct(c['base_clean'])}, so "
                  "compare the share each keeps)")
    kept = f"{a} keeps {_pct(c['kept'])} of its clean accuracy under corruption, {b} {_pct(c['base_kept'])}"
    verdict = {"more": f"with {what}, the network is more robust here", "less": f"with {what}, the network is less "
               "robust here", "as": f"{what} make no difference to robustness that this sample resolves (within "
               f"{c['margin']:.0%})"}[c["verdict"]]
    return f"{kept}, {clean}: {verdict}."


def corruptions_text(record: dict) -> str:
    """What the corruption measurements show, in a paragraph."""
    rows = sorted(table(record), key=lambda r: -r["corrupted (mean)"])
    if not rows:
        return ""
    n = len(next(iter(record["networks"].values()))["corruptions"])
    parts = [f"On {record['images']:,} test images, under {n} corruptions at 5 severities each, mean accuracy is "
             + listing([f"{r['network']} {_pct(r['corrupted (mean)'])} (clean {_pct(r['clean'])}, a drop of "
                        f"{r['drop'] * 100:.1f} points)" for r in rows]) + "."]
    errors = [r["CIFAR-10-C error"] for r in rows]
    parts.append(f"That is a CIFAR-10-C error of {_pct(min(errors))} to {_pct(max(errors))} on our reimplementation; "
                 f"with standard training the AugMix paper (Table 1) reports {_pct(ANCHOR['DenseNet-BC'])} for a "
                 f"DenseNet and {_pct(ANCHOR['WideResNet-40-2'])} for a WideResNet, on the whole test split and all "
                 "15 corruptions.")
    parts += [s for key, base, what in COMPARISONS if (s := _comparison_sentence(record, key, base, what))]
    parts.append(f"On {record['images']:,} images one image is {1 / record['images']:.1%} of the accuracy, so "
                 "differences of a point or two in these shares are within the noise of the sample; "
                 "`python -m cifarnets stress --images 10000` measures the whole split.")
    worst = hardest(record)
    if worst:
        name, severity, acc = worst
        parts.append(f"The hardest corruption is {title(name).lower()} at severity {severity}: the networks average "
                     f"{_pct(acc)} there.")
    return " ".join(parts)


def hardest(record: dict) -> tuple[str, int, float] | None:
    """(corruption, severity, accuracy averaged over the networks) of the lowest such average."""
    nets = list(record["networks"].values())
    cells = [(name, s + 1, sum(n["corruptions"][name][s] for n in nets) / len(nets))
             for name in NAMES if all(name in n["corruptions"] for n in nets) for s in range(5)]
    return min(cells, key=lambda c: c[2]) if cells else None


def left_out_text() -> str:
    return "Left out: " + "; ".join(f"{name}, which {why}" for name, why in LEFT_OUT.items()) + "."


def transfer_text(record: dict) -> str:
    """What the transfer matrix and robust accuracy show, in a paragraph."""
    t = record.get("transfer")
    if not t:
        return ""
    top = str(max(t["eps"]))
    keys = list(t["fooled"])
    own = {k: t["fooled"][k][top][k] for k in keys}
    passed = {k: sum(t["fooled"][k][top][o] for o in keys if o != k) / (len(keys) - 1) for k in keys}
    best = max(passed, key=passed.get)
    robust = {k: t["robust"][k][top] for k in keys}
    fewer = all(passed[k] < own[k] for k in keys)
    return (f"At ε = {top}/255 on {t['images']:,} test images, one FGSM step against a network changes its own answer "
            f"on {listing([f'{_pct(v)} ({label(k)})' for k, v in own.items()])} of them, and leaves it right on "
            f"{listing([f'{_pct(v)} ({label(k)})' for k, v in robust.items()])} (its robust accuracy). "
            f"Handed to the other three, the same perturbation changes "
            + ("fewer answers" if fewer else "answers too") + ": on average "
            f"{listing([f'{_pct(v)} from {label(k)}' for k, v in passed.items()])}; "
            f"{label(best)}'s perturbations carry over best.")


LESSON = ("A change of a few 1/255 steps per pixel, too small to see, flips the answers of all four networks, "
          "and a change made against one often flips the others too: the networks rest on features a person "
          "does not use, and share some of them. Corruptions are different: they are large, visible, random "
          "changes of the kind cameras and weather make, and no one chose them against the network; a network "
          "that copes with them well can still be broken by a perturbation searched for against it, and "
          "robustness to one need not bring robustness to the other.")
