"""The sentences the page writes under each view, from the measurements (never from the report's text).

Each function takes the plain rows or records a view draws and returns a short text, or "" when there
is nothing to say. Where a measurement bears on one of the report's claims, the text says whether it
agrees: the report's claims are the only fixed text here.
"""

from __future__ import annotations

import math

import numpy as np

from ..models import KEYS, label, spec
from ..prose import listing

CLOSE = 2.0  # ratios within this factor of each other count as "about the same"
SAME_TIME = 0.05  # latencies within 5% of each other count as the same: timings on a busy machine vary that much


def _x(v: float) -> str:
    return f"{v:.2g}x" if v < 10 else f"{v:.0f}x"




# ---------------------------------------------------------------- gradient flow

def compared_layers(rows: list[dict]) -> dict[tuple[str, str], tuple[dict, dict]]:
    """{(network, moment): (its first main-path convolution's row, its last one's)}: the two layers the text
    compares and the chart rings. The classifier after the last convolution is left out: a linear layer's
    gradient is not comparable with a convolution's."""
    out = {}
    for key in {(r["network"], r["moment"]) for r in rows}:
        convs = sorted((r for r in rows if (r["network"], r["moment"]) == key and r["kind"] == "conv"),
                       key=lambda r: r["depth"])
        if len(convs) >= 2:
            out[key] = (convs[0], convs[-1])
    return out


def first_to_last(rows: list[dict], metric: str = "rms") -> dict[tuple[str, str], float]:
    """{(network, moment): metric at the first main-path convolution / at the last one}.

    Below 1, the gradient shrinks toward the input (what "vanishing" means); above 1, it grows.
    """
    return {key: first[metric] / last[metric] for key, (first, last) in compared_layers(rows).items()
            if last[metric] > 0}


def gradients(rows: list[dict], metric: str = "rms") -> str:
    ratios = first_to_last(rows, metric)
    if not ratios:
        return ""
    what = "gradient per weight" if metric == "rms" else "gradient norm"
    ends = compared_layers(rows)
    lasts = {}  # the last convolution, by network: named, since the classifier after it sits higher on the chart
    for (n, _), (_, last) in sorted(ends.items()):
        lasts.setdefault(n, f"{n}'s {last['layer']} (depth {last['depth']})")
    parts = ["Each network's first convolution is compared with its last convolution ("
             + listing(list(lasts.values()))
             + "; both ringed on the chart), not with the classifier after it, whose gradient is not comparable."]
    if any(r < 1 for r in ratios.values()):
        parts.append("A gradient that is smaller at the first layer than at the last is what vanishing looks like.")
    verdict = {}
    for moment in ("at initialisation", "after training"):
        here = {n: r for (n, m), r in ratios.items() if m == moment}
        if not here:
            continue
        larger = [f"{n} {_x(r)}" for n, r in sorted(here.items(), key=lambda kv: -kv[1]) if r >= 1]
        smaller = [f"{n} {_x(r)}" for n, r in sorted(here.items(), key=lambda kv: -kv[1]) if r < 1]
        said = [f"larger than at the last in {listing(larger)}" if larger else "",
                f"smaller in {listing(smaller)}" if smaller else ""]
        parts.append(f"{moment.capitalize()}, the {what} at the first convolution is "
                     + "; ".join(s for s in said if s) + ".")
        plain, res = here.get(label("resnet_plain")), here.get(label("resnet"))
        if plain is not None and res is not None:
            verdict[moment] = (plain, res)
    if verdict:
        parts.append(_depth_verdict(verdict))
    return " ".join(parts)


def _depth_verdict(ratios: dict[str, tuple[float, float]]) -> str:
    """ratios: {moment: first-to-last ratios of the ResNet without and with shortcuts}. One conclusion for
    the moments that agree, so no sentence is said twice."""
    def kind(plain: float, res: float) -> str:
        return "vanish" if plain < 1 and plain * CLOSE < res else "fine" if plain >= 1 else "alike"
    groups: dict[str, list[str]] = {}
    for moment, (plain, res) in ratios.items():
        groups.setdefault(kind(plain, res), []).append(moment)
    parts = []
    for what, moments in groups.items():
        when = listing(moments)
        plain = listing([_x(ratios[m][0]) for m in moments])
        res = listing([_x(ratios[m][1]) for m in moments])
        if what == "vanish":
            parts.append(f"{when.capitalize()}, the first layer of the ResNet without shortcuts gets less of the "
                         f"gradient, relative to its last convolution, than the ResNet's ({plain} against {res}): "
                         "this agrees with the report's claim that shortcuts keep gradients flowing.")
        elif what == "fine":
            parts.append(f"Without shortcuts the gradient does not vanish {when}: the first convolution gets {plain} "
                         f"what the last one gets (with shortcuts: {res}). At this depth (14 weight layers, each "
                         "convolution followed by BatchNorm) there is no vanishing gradient for shortcuts to fix, "
                         "which does not support the report's argument.")
        else:
            parts.append(f"{when.capitalize()}, the gradient shrinks toward the input about as much without shortcuts "
                         f"({plain}) as with them ({res}): the shortcuts make little difference to it here, contrary "
                         "to the report's argument.")
    return " ".join(parts)


# ---------------------------------------------------------------- cost

def cost(rows: list[dict]) -> str:
    """rows: network, params, macs, and test_acc where known."""
    by = {r["network"]: r for r in rows}
    dense, res, se = by.get(label("densenet")), by.get(label("resnet")), by.get(label("se_resnet"))
    parts = []
    if dense and res:
        fewer = dense["params"] < res["params"]
        parts.append(f"The DenseNet has {dense['params'] / res['params']:.0%} of the ResNet's parameters and needs "
                     f"{dense['macs'] / res['macs']:.0%} of its multiply-accumulates per image"
                     + (", so it is indeed the smaller network, as the report says." if fewer else
                        ", which contradicts the report's claim that it does with fewer parameters."))
        if dense.get("test_acc") is not None and res.get("test_acc") is not None:
            gap = (dense["test_acc"] - res["test_acc"]) * 100
            parts.append(f"It reaches {dense['test_acc']:.1%} against the ResNet's {res['test_acc']:.1%} "
                         f"({gap:+.1f} points).")
    if se and res:
        parts.append(f"The SE blocks add {se['params'] - res['params']:,} parameters "
                     f"({se['params'] / res['params'] - 1:+.1%}) and {se['macs'] / res['macs'] - 1:+.2%} compute.")
        parts.append(_latency_pair(se, res))
    top = max(rows, key=lambda r: r["macs"]) if rows else None
    low = min(rows, key=lambda r: r["macs"]) if rows else None
    if top and low and top is not low:
        parts.append(f"The {top['network']} costs {_x(top['macs'] / low['macs'])} the compute of the {low['network']}.")
    return " ".join(parts)


def _latency_pair(se: dict, res: dict, batch: int = 256) -> str:
    """What the stored latencies say about the SE-ResNet against the ResNet at one batch size."""
    a, b = se.get(f"latency_ms_{batch}"), res.get(f"latency_ms_{batch}")
    if not a or not b:
        return ""
    gap = a / b - 1
    how = ("about the same time" if abs(gap) < SAME_TIME else
           f"{gap:.0%} longer" if gap > 0 else f"{-gap:.0%} less time")
    said = f"{batch} images take the SE-ResNet {a:.1f} ms and the ResNet {b:.1f} ms: {how}"
    if not (se.get("latency_together") and res.get("latency_together")):
        return (f"As stored, {said}; but they were timed one after another, when the machine's load may have "
                "differed: `python -m cifarnets analyze --latency-only` times them together.")
    return (f"Timed together, {said}"
            + (", as their near-equal compute predicts." if abs(gap) < SAME_TIME else
               ": the SE blocks' pooling and tiny layers cost time that multiply-accumulates do not count."
               if gap > 0 else ", which their compute does not explain: time them again with the button above."))


# ---------------------------------------------------------------- quality

def per_class(records: dict[str, dict], classes: list[str]) -> str:
    """records: {network label: quality summary}."""
    if not records:
        return ""
    acc = np.array([r["per_class"] for r in records.values()])  # (networks, classes)
    mean = acc.mean(0)
    hardest, easiest = int(mean.argmin()), int(mean.argmax())
    worst_each = {classes[int(a.argmin())] for a in acc}
    who = f"For the {next(iter(records))}" if len(records) == 1 else "Averaged over the networks"
    text = (f"{who}, {classes[hardest]} is the hardest class ({mean[hardest]:.0%}) and {classes[easiest]} the "
            f"easiest ({mean[easiest]:.0%})")
    text += (f"; {classes[hardest]} is the weakest class of every network." if len(records) > 1 and
             worst_each == {classes[hardest]} else ".")
    confusions = []
    for name, r in records.items():
        m = np.array(r["confusion"], dtype=float)
        np.fill_diagonal(m, 0)
        t, p = np.unravel_index(int(m.argmax()), m.shape)
        confusions.append(f"{name} {classes[t]} as {classes[p]} ({int(m[t, p])} times)")
    return text + " The most frequent mistakes: " + listing(confusions) + "."


FEW_PHOTOS = 10  # a class with fewer real photos is left out of photo_gaps' sentences


def photo_gaps(test: dict[str, dict], photos: dict[str, dict], classes: list[str]) -> str:
    """What real photos change against the test split, from both quality summaries ({network label: summary}):
    the class that loses most, and per network the confusion photos add most (in points of its true class)."""
    both = [n for n in photos if n in test]
    if not both:
        return ""
    counts = photos[both[0]].get("per_class_n") or [FEW_PHOTOS] * len(classes)
    # a class of a few photos moves by a third with one photo: only classes with enough of them are named
    present = [c for c, n in enumerate(counts) if n >= FEW_PHOTOS] or [c for c, n in enumerate(counts) if n]
    drop = np.mean([[test[n]["per_class"][c] - photos[n]["per_class"][c] for c in present] for n in both], 0)
    worst = present[int(drop.argmax())]
    added = []
    for n in both:
        share = lambda m: m / np.maximum(m.sum(1, keepdims=True), 1)  # noqa: E731
        on_photos = share(np.array(photos[n]["confusion"], float))
        on_test = share(np.array(test[n]["confusion"], float))
        gain = on_photos - on_test
        np.fill_diagonal(gain, -1)
        gain[[c for c in range(len(counts)) if c not in present]] = -1
        t, p = np.unravel_index(int(gain.argmax()), gain.shape)
        added.append(f"{n} {classes[t]} as {classes[p]} ({on_photos[t, p]:.0%} of its {classes[t]} photos, "
                     f"{on_test[t, p]:.0%} of the test split's)")
    few = [f"{classes[c]} ({counts[c]})" for c, n in enumerate(counts) if 0 < n < FEW_PHOTOS]
    return (f"On real photos {classes[worst]} loses most: {100 * drop.max():.0f} points below the test split, "
            f"averaged over the networks. The confusion photos add most, against the test split: {listing(added)}."
            + (f" Only a few photos of {listing(few)}: left out here, and rough in the charts." if few else ""))


def versus_report(records: dict[str, dict], recipes: dict[str, dict] | None = None) -> str:
    """The report's accuracy claims, against the measured test accuracy. `recipes` ({label: the recipe its
    config.json records}) lets the SE-ResNet-against-ResNet sentence say when they were not trained alike."""
    parts = []
    for key in KEYS:
        level, how = spec(key).report
        r = records.get(label(key))
        if not r:
            continue
        acc = r["accuracy"]
        if how == "about" and abs(acc - level) <= 0.03 or how == "above" and acc >= level:
            verdict = "as the report says"
        else:
            verdict = "higher than the report's" if acc > level else "below what the report says"
        parts.append(f"{label(key)} {acc:.1%} (report: {how} {level:.0%}; {verdict})")
    res, se = records.get(label("resnet")), records.get(label("se_resnet"))
    tail = ""
    if res and se:
        gap = (se["accuracy"] - res["accuracy"]) * 100
        digits = 1 if abs(gap) >= 0.1 else 2  # so a gap of a few hundredths never reads "+0.0"
        tail = (f" The report found SE-ResNet about level with ResNet; here it is {gap:+.{digits}f} points"
                + (", level indeed." if abs(gap) < 1 else (", ahead." if gap > 0 else ", behind.")))
        unlike = _unlike((recipes or {}).get(label("resnet")), (recipes or {}).get(label("se_resnet")))
        if unlike:
            tail += (f" But they were not trained alike ({unlike}), so the gap is the recipes' as much as the SE "
                     "blocks'.")
    return ("Test accuracy: " + listing(parts) + "." + tail) if parts else ""


def _unlike(a: dict | None, b: dict | None) -> str:
    """Where two recipes differ, "ResNet: epochs 150, cutout 8; SE-ResNet: epochs 100, cutout 0"; "" if alike
    or unknown."""
    if not a or not b:
        return ""
    fields = [k for k in a if k not in ("name", "note") and k in b and a[k] != b[k]]
    if not fields:
        return ""
    def said(recipe: dict) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {recipe[k]}" for k in fields)
    return f"{label('resnet')}: {said(a)}; {label('se_resnet')}: {said(b)}"


def calibration(records: dict[str, dict], label_smoothing: dict[str, float] | None = None) -> str:
    if not records:
        return ""
    eces = sorted(((r["ece"], n) for n, r in records.items()))
    text = ("Expected calibration error (the mean gap between confidence and accuracy): "
            + listing([f"{n} {e:.3f}" for e, n in eces]) + (f"; {eces[0][1]} is the best calibrated." if len(eces) > 1
                                                            else "."))
    under = [n for n, r in records.items() if r["overconfidence"] < 0]
    over = [n for n, r in records.items() if r["overconfidence"] > 0]
    if under:
        text += f" Under-confident (right more often than they claim): {listing(under)}."
    if over:
        text += f" Over-confident: {listing(over)}."
    smoothed = [n for n in under if (label_smoothing or {}).get(n, 0) > 0]
    if smoothed:
        text += (f" {listing(smoothed)} {'was' if len(smoothed) == 1 else 'were'} trained with label smoothing, "
                 "which pulls confidence down on purpose.")
    return text


def agreement(joint: dict) -> str:
    a, n = joint.get("agreement"), joint.get("n_test")
    if not a or not n:
        return ""
    nets = len(joint.get("networks", {}))
    if nets < 2:
        return ""
    return (f"The {nets} networks give the same answer on {a['same_answer']:.1%} of the {n:,} test images; all are "
            f"right on {a['all_right']:.1%} and all wrong on {a['all_wrong']:.1%}. Below, the images they disagree "
            "on most: the most different answers first, then the most confidently contradictory.")


# ---------------------------------------------------------------- per image

def cams(heats: dict[str, np.ndarray]) -> str:
    """How alike the networks' Grad-CAM maps are for one image: pairwise correlation."""
    names = [n for n, h in heats.items() if h.std() > 0]
    pairs = [(float(np.corrcoef(heats[a].ravel(), heats[b].ravel())[0, 1]), a, b)
             for i, a in enumerate(names) for b in names[i + 1:]]
    flat = [n for n, h in heats.items() if h.std() == 0]
    text = ""
    if pairs:
        pairs.sort()
        hi, lo = pairs[-1], pairs[0]
        text = (f"Most alike: {hi[1]} and {hi[2]} (correlation {hi[0]:.2f}); least alike: {lo[1]} and {lo[2]} "
                f"({lo[0]:.2f}).")
    if flat:
        text += f" {listing(flat)}: no region raises the score of this class (the map is flat)."
    return text.strip()


def se_classes(spread: dict[str, float]) -> str:
    """spread: {block: how much the SE weights vary across classes}, blocks in network order."""
    if len(spread) < 2:
        return ""
    names, values = list(spread), list(spread.values())
    first, last = values[0], values[-1]
    rising = sum(b > a for a, b in zip(values, values[1:], strict=False))
    text = (f"Across the ten classes, the mean per-channel spread of the SE weights goes from {first:.3f} in the "
            f"first block ({names[0]}) to {last:.3f} in the last ({names[-1]})")
    if last > first * CLOSE:
        return text + (f" ({last / max(first, 1e-12):.0f}x): late blocks weight channels by class, early ones alike "
                       "for all, as Hu et al. found for SE networks.")
    if first > last * CLOSE:
        return text + ": here the early blocks are the class-specific ones, unlike what Hu et al. found."
    return text + f" ({rising} of {len(values) - 1} steps rise): no clear trend with depth."


def stages(shapes: dict[str, list[tuple[int, int, int]]]) -> str:
    """The takeaway of the stage maps. shapes: {network: (channels, height, width) of each stage, in order}."""
    trades = [f"{n} from {a[0]} maps of {a[1]}x{a[2]} to {b[0]} of {b[1]}x{b[2]}"
              for n, (a, b) in ((n, (s[0], s[-1])) for n, s in shapes.items() if len(s) >= 2)]
    if not trades:
        return ""
    return ("**What to take away.** Stage by stage, every network trades *where* for *what*: "
            + listing(trades) + ". The first maps still look like the picture (its edges, colours and light); the "
            "last are a few pixels each, too coarse to show where things are, and each channel stands for a "
            "pattern the network learned to tell the classes apart. The classifier sees only those.")


# ---------------------------------------------------------------- DenseNet feature reuse

IGNORED = 0.10  # a source weighted under this share of the row's strongest counts as nearly ignored
EVEN = 0.50  # at or above this share, every source is used about as much as the strongest


def reuse(rows: list[dict]) -> str:
    if not rows:
        return ""
    parts = []
    layers = [r for r in rows if r["consumer"].startswith("layer") and r["consumer_index"] > 0]
    weakest = math.inf
    for block in sorted({r["block"] for r in layers}):
        for c in sorted({r["consumer_index"] for r in layers if r["block"] == block}):
            vals = [r["mean_abs_weight"] for r in layers if r["block"] == block and r["consumer_index"] == c]
            weakest = min(weakest, min(vals) / max(vals))
    if weakest < math.inf:
        how = (f"some earlier features are nearly ignored (under {IGNORED:.0%} of the strongest), so reuse is partial."
               if weakest < IGNORED else
               f"every earlier feature is used, though unevenly (none falls under {IGNORED:.0%}, which would count as "
               "nearly ignored)."
               if weakest < EVEN else
               "all earlier features are used about evenly, the feature reuse the report claims.")
        parts.append(f"Every dense layer puts at least {weakest:.0%} as much weight (per channel) on its least-used "
                     "input as on its most-used one: " + how)
    cls = sorted((r for r in rows if r["consumer"] == "classifier"), key=lambda r: r["source_index"])
    if len(cls) >= 2:
        ratio = cls[-1]["mean_abs_weight"] / max(cls[0]["mean_abs_weight"], 1e-12)
        parts.append(f"The classifier weights the last layer's channels {_x(ratio)} as strongly as the last block's "
                     "input" + (" (it leans on the newest features, as in the DenseNet paper)." if ratio > 1
                                else " (it leans on the older features)."))
    return " ".join(parts)
