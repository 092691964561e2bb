"""What the calibration's numbers show, in sentences written from them (never from expectations).

Each function takes {network label: the record `calibrate` stored} and returns Markdown.
"""

from __future__ import annotations

from ..prose import listing, one_in
from .scores import METHODS

CLOSE = 0.02  # AUROCs nearer than this are called about the same




def aim(records: dict[str, dict]) -> float:
    """The share of the test split the thresholds were asked to keep under them (records before real photos
    could raise a threshold stored only that, as "rate")."""
    first = next(iter(records.values()))
    return first.get("rate_asked", first["rate"])


def ranking(records: dict[str, dict]) -> str:
    """Which network tells CIFAR-10 from the unfamiliar set best, with the chosen method, and by how much."""
    method = next(iter(records.values()))["method"]
    auroc = {name: r["auroc"][method] for name, r in records.items()}
    order = sorted(auroc, key=auroc.get, reverse=True)
    best, worst = order[0], order[-1]
    top = [n for n in order if auroc[best] - auroc[n] < CLOSE]
    bottom = [n for n in order if n not in top and auroc[n] - auroc[worst] < CLOSE]

    def span(nets: list[str]) -> str:
        hi, lo = f"{auroc[nets[0]]:.2f}", f"{auroc[nets[-1]]:.2f}"
        return hi if hi == lo else f"{lo} to {hi}"

    text = (f"With the {METHODS[method]}, **{listing(top)}** tell{'s' if len(top) == 1 else ''} CIFAR-10 from "
            f"unfamiliar inputs best (AUROC {span(top)})")
    if bottom:
        text += (f"; **{listing(bottom)}** least well ({span(bottom)}): a randomly drawn unfamiliar input scores above "
                 f"a randomly drawn test image {auroc[worst]:.0%} of the time for {worst}, {auroc[best]:.0%} for "
                 f"{best}.")
    else:
        text += "."
    return text


def methods(records: dict[str, dict]) -> str:
    """How the methods compare over the networks, and whether the top probability the bars show is any guide."""
    chosen = next(iter(records.values()))["method"]
    # the methods every record measured (one calibrated before a method was added lacks it)
    mean = {m: sum(r["auroc"][m] for r in records.values()) / len(records) for m in METHODS
            if all(m in r["auroc"] for r in records.values())}
    if chosen not in mean or "msp" not in mean:  # networks calibrated at different times: nothing to compare
        return f"The networks use the {METHODS[chosen]} or methods of earlier calibrations."
    order = sorted(mean, key=mean.get, reverse=True)
    wins = [n for n, r in records.items() if max(r["auroc"], key=r["auroc"].get) == chosen]
    on_photos = all("auroc" in r.get("photos", {}) for r in records.values())
    why = ("it had the highest mean AUROC telling photos of other things from photos of the ten classes, the "
           "question a user asks (below)" if on_photos else "it had the highest mean AUROC when the method was chosen")
    text = (f"Of the {len(mean)} methods compared, the **{METHODS[chosen]}** is used: {why}; on the held-out test "
            f"images against made-up inputs it averages {mean[chosen]:.2f}, against "
            + ", ".join(f"{mean[m]:.2f} for the {METHODS[m]}" for m in order if m != chosen) + ". ")
    if len(wins) < len(records):
        others = [n for n in records if n not in wins]
        alt = {n: max(records[n]["auroc"], key=records[n]["auroc"].get) for n in others}
        text += ("It is not the best for every network: " + "; ".join(
            f"{n} does better with the {METHODS[alt[n]]} ({records[n]['auroc'][alt[n]]:.2f} against "
            f"{records[n]['auroc'][chosen]:.2f})" for n in others) + ". One method for all keeps the networks' "
            "AUROCs comparable. ")
    msp = mean["msp"]
    text += (f"The top probability the bars show is a poor guide (mean AUROC {msp:.2f}): "
             if msp < 0.8 else f"The top probability the bars show is a fair guide (mean AUROC {msp:.2f}), ")
    text += ("a network can be very sure of noise." if msp < 0.8 else "but the features say more.")
    return text


def kinds(records: dict[str, dict]) -> str:
    """Which kinds of unfamiliar input each network catches, where they differ most, and what none catches."""
    names = list(next(iter(records.values()))["flagged"])
    share = {k: {n: r["flagged"][k] for n, r in records.items()} for k in names}
    groups: dict[tuple[str, ...], list[str]] = {}  # the kinds a network flags at least 90% of -> those networks
    for n in records:
        groups.setdefault(tuple(k for k in names if share[k][n] >= 0.9), []).append(n)
    parts = []
    for strong, nets in sorted(groups.items(), key=lambda g: -len(g[0])):
        who = listing([f"**{n}**" for n in nets])
        if strong:
            parts.append(f"{who} flag{'s' if len(nets) == 1 else ''} at least 90% of the {listing(list(strong))} "
                         "inputs.")
        else:
            parts.append(f"{who} flag{'s' if len(nets) == 1 else ''} no kind that often.")
    gap = max(names, key=lambda k: max(share[k].values()) - min(share[k].values()))
    hi, lo = max(share[gap], key=share[gap].get), min(share[gap], key=share[gap].get)
    if share[gap][hi] - share[gap][lo] >= 0.2:
        parts.append(f"They differ most on **{gap}**: {hi} flags {share[gap][hi]:.0%} of it, "
                     f"{lo} {share[gap][lo]:.0%}.")
    missed = [k for k in names if max(share[k].values()) < 0.25]
    if missed:
        parts.append(f"No network flags as much as a quarter of the {listing(missed)} inputs: to all of them these "
                     "look like CIFAR-10, so their answers there carry no warning.")
    rates = [r["held_out_rate"] for r in records.values()]
    rate = aim(records)
    parts.append(f"The threshold keeps {min(rates):.1%} to {max(rates):.1%} of held-out CIFAR-10 test images under it "
                 f"(the aim: {rate:.0%}), so about {one_in([1 - r for r in rates])} real CIFAR-10 images are "
                 "flagged too.")
    return " ".join(parts)


def photos(records: dict[str, dict]) -> str:
    """How often real photos of the ten classes are flagged, with the threshold set on the test split alone and as
    stored (raised to keep calibrate's share of the photos under it), and on the photos that did not set it.
    Empty for records calibrated without photos."""
    found = {n: r["photos"] for n, r in records.items() if isinstance(r.get("photos"), dict)}
    if not found:
        return ""
    first = next(iter(found.values()))

    def span(key: str) -> str:
        lo, hi = min(p[key] for p in found.values()), max(p[key] for p in found.values())
        return f"{lo:.0%}" if f"{lo:.0%}" == f"{hi:.0%}" else f"{lo:.0%} to {hi:.0%}"

    raised = [n for n, p in found.items() if p["flagged"] < p["flagged_at_test_rate"]]
    text = (f"**On real photos of the ten classes** ({first['n']} of them), a threshold set on the test split alone "
            f"flags {span('flagged_at_test_rate')}: an upload is a photo, and photos differ from CIFAR-10's own "
            f"images. So each threshold also keeps at least {first['rate']:.0%} of the photos under it")
    text += (f", which raised it for {listing(raised)}." if raised else "; none had to be raised.")
    text += (f" Set on half of the photos and counted on the other half, {span('flagged_unseen')} of them are "
             "flagged: what to expect of a new photo.")
    if all("auroc" in p for p in found.values()):
        method = next(iter(records.values()))["method"]
        a = {n: p["auroc"][method]["auroc"] for n, p in found.items()}
        text += (f" **Is my photo one of the ten?** Against {first['other_n']} photos of other things (objects, food, "
                 f"scenes, people), the {METHODS[method]} ranks a photo of something else above a photo of the ten "
                 f"with an AUROC of {min(a.values()):.2f} to {max(a.values()):.2f}, and flags "
                 f"{span('other_flagged_unseen')} of those photos at the same thresholds (counted, too, on halves "
                 "that did not set them).")
    return text
