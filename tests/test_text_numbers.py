"""Every number a page writes in its findings is the stored measurement it names.

The pages run (AppTest, the shipped checkpoints); their paragraphs are collected; for each paragraph that
states measurements, the test builds from the stored files (config.json, analysis.json, the calibration
record) or from the loaded weights the phrases it must contain, "CNN 1.5x", "ResNet 90.2%", each number
beside the name it belongs to. Each phrase must be in the paragraph; then every phrase and every name is
cut out, and no digit may be left: a number that no measurement accounts for fails the test, so no
sentence can drift from its chart again.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers.app import APP, PAGES, WHY_TABS, open_tab
from streamlit.testing.v1 import AppTest

from cifarnets.analysis.gradients import depth_rows
from cifarnets.analysis.reuse import feature_reuse
from cifarnets.analysis.stages import stage_maps
from cifarnets.models import ALL_KEYS, KEYS, label
from cifarnets.paths import project_root
from cifarnets.prose import duration, one_in
from cifarnets.store import checkpoints as ckpt
from cifarnets.store.fileio import read_json

SHIPPED = project_root() / "checkpoints"
# Names with digits in them, and the report's fixed claims (the only numbers not measured here).
NAMES = [r"CIFAR-10", r"SE-ResNet", r"conv\d", r"layer\d(\.\d)*(\.conv\d)?", r"features\.\d(\.layers\.\d\.conv\.\d)?",
         r"report: (about|above) \d+%", r"14 weight layers"]


def x(v: float) -> str:  # a ratio as the pages write it
    return f"{v:.2g}x" if v < 10 else f"{v:.0f}x"


@pytest.fixture(scope="module")
def stored():
    """What the measurements stored beside the shipped checkpoints say, read here without the app's code."""
    keys = [k for k in ALL_KEYS if (SHIPPED / k / "config.json").exists()]
    return {"config": {k: read_json(SHIPPED / k / "config.json") for k in keys},
            "analysis": {k: read_json(SHIPPED / k / "analysis.json") for k in keys},
            "joint": read_json(SHIPPED / "analysis.json")}


@pytest.fixture(scope="module")
def shipped_app(tmp_path_factory):
    """The app as it ships: its own checkpoints, no runs, the CPU."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CIFARNETS_RUNS", str(tmp_path_factory.mktemp("runs")))
    mp.setenv("CIFARNETS_DEVICE", "cpu")
    mp.delenv("CIFARNETS_CHECKPOINTS", raising=False)
    mp.delenv("CIFARNETS_HUB", raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def pages(shipped_app):
    """{page or view: its paragraphs}, main area only (the sidebar is the trainer's, the same on every page)."""
    at = AppTest.from_file(str(APP), default_timeout=300).run()
    out = {"Home": paragraphs(at)}
    at.switch_page(PAGES["Classify"])
    at.query_params["examples"] = ["cat (photo)"]
    out["Classify"] = paragraphs(at.run())
    at.switch_page(PAGES["Why they differ"]).run()
    for view in WHY_TABS:
        out[view] = paragraphs(open_tab(at, view))
        assert not at.exception, (view, [e.value for e in at.exception])
    return out


def paragraphs(at) -> list[str]:
    return [str(e.value) for kind in ("markdown", "caption", "info", "warning") for e in at.main.get(kind)]


def the(paragraphs_: list[str], start: str) -> str:
    found = [p for p in paragraphs_ if p.startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


def accounted(paragraph: str, phrases: list[str]) -> None:
    """Each phrase is in the paragraph; with the phrases and names cut out, no digit is left."""
    missing = [p for p in phrases if p not in paragraph]
    assert not missing, (missing, paragraph)
    rest = paragraph
    for p in sorted(phrases, key=len, reverse=True):
        rest = rest.replace(p, " ")
    for name in NAMES:
        rest = re.sub(name, " ", rest)
    assert not re.search(r"\d", rest), f"numbers no measurement accounts for: {rest!r}"


def pct(v: float, digits: int = 1) -> str:
    return f"{v:.{digits}%}"


# ---------------------------------------------------------------- Home and Classify

def test_home_cards_say_the_stored_accuracy_and_training(pages, stored):
    at = AppTest.from_file(str(APP), default_timeout=300).run()
    by_label: dict[str, list[str]] = {}  # each card's figures, in card order
    for m in at.metric:
        by_label.setdefault(m.label, []).append(m.value)
    assert by_label["Test accuracy"] == [pct(stored["config"][k]["metrics"]["test_acc"]) for k in KEYS]
    assert by_label["Parameters"] == [f"{stored['config'][k]['params']:,}" for k in KEYS]
    assert by_label["Real photos"] == [f"{stored['config'][k]['photos']['accuracy']:.0%}" for k in KEYS]
    for key in KEYS:
        config = stored["config"][key]
        wall = config["wall_s"]
        took = duration(wall)  # the format is prose's; the number is the stored wall time
        line = f"{config['epochs']} epoch{'s' if config['epochs'] != 1 else ''} in {took} on {config['device']}"
        assert any(line in p for p in pages["Home"]), line


def test_classify_says_how_much_harder_photos_are_from_the_stored_figures(pages, stored):
    gaps = [100 * (stored["config"][k]["metrics"]["test_acc"] - stored["config"][k]["photos"]["accuracy"])
            for k in KEYS]
    line = the(pages["Classify"], "Photos are harder")
    figures = [stored["config"][k]["photos"] for k in KEYS]
    each = [f"{label(k)} {f['accuracy']:.0%} ({f['interval'][0]:.0%} to {f['interval'][1]:.0%})"
            for k, f in zip(KEYS, figures, strict=True)]
    accounted(line, [f"here {round(min(gaps))} to {round(max(gaps))} points fewer right", "shrunk to 32x32",
                     f"Of {figures[0]['n']} real photos", "90% intervals", *each])


def test_the_badge_line_says_how_often_a_cifar_image_is_flagged(pages, stored):
    rates = [stored["config"][k]["unfamiliar"]["held_out_rate"] for k in KEYS]
    ns = sorted({round(1 / (1 - r)) for r in rates})
    line = the(pages["Classify"], "Under each answer")
    phrases = [f"about 1 in {ns[0]} to {ns[-1]} real CIFAR-10 test images"]
    photos = [stored["config"][k]["unfamiliar"].get("photos") for k in KEYS]
    if all(photos):  # calibrated with real photos: how often one the threshold never saw is flagged
        phrases.append(f"and {one_in([p['flagged_unseen'] for p in photos])} real photos of the ten classes")
    if all(p and "other_flagged_unseen" in p for p in photos):  # and photos of other things it lets pass
        lo, hi = (f"{f(p['other_flagged_unseen'] for p in photos):.0%}" for f in (min, max))
        phrases.append(f"only {lo if lo == hi else f'{lo} to {hi}'} of photos of other things")
    accounted(line, phrases)


# ---------------------------------------------------------------- Why they differ

def test_gradient_flow_names_the_layers_and_their_ratios(pages, stored):
    text = the(pages["Gradient flow"], "Each network's first convolution")
    phrases, ratios = [], {}
    for key in ALL_KEYS:
        name, grads = label(key), stored["analysis"][key]["gradients"]
        for moment, field in (("init", "init"), ("trained", "trained")):
            rows = [r for r in depth_rows(key, grads[field]) if r["kind"] == "conv"] if field in grads else []
            if len(rows) < 2:
                continue
            first, last = min(rows, key=lambda r: r["depth"]), max(rows, key=lambda r: r["depth"])
            ratios[key, moment] = first["rms"] / last["rms"]
            phrases.append(f"{name} {x(ratios[key, moment])}")
        phrases.append(f"{name}'s {last['layer']} (depth {last['depth']})")
    plain, res = [ratios["resnet_plain", m] for m in ("init", "trained")], [ratios["resnet", m] for m in
                                                                           ("init", "trained")]
    phrases += [f"gets {x(plain[0])} and {x(plain[1])} what", f"with shortcuts: {x(res[0])} and {x(res[1])}"]
    accounted(text, phrases)
    assert text.count("does not support the report") + text.count("agrees with the report") == 1


def test_shortcut_accuracy_is_the_histories_last_common_epoch(pages, stored):
    text = the(pages["Gradient flow"], "At epoch")
    hist = {k: {r["epoch"]: r["test_acc"] for r in read_json(SHIPPED / k / "history.json")}
            for k in ("resnet", "resnet_plain")}
    epoch = max(set(hist["resnet"]) & set(hist["resnet_plain"]))
    a, b = hist["resnet"][epoch], hist["resnet_plain"][epoch]
    accounted(text, [f"At epoch {epoch},", f"{(a - b) * 100:+.1f} points", f"{pct(a)} with", f"{pct(b)} without"])


def test_cost_says_what_the_stored_cost_shows(pages, stored):
    text = the(pages["Cost"], "The DenseNet has")
    c = {k: stored["analysis"][k]["cost"] for k in ALL_KEYS}
    acc = {k: stored["config"][k]["metrics"]["test_acc"] for k in KEYS}
    ms = {k: c[k]["latency_s"]["256"] * 1e3 for k in ("se_resnet", "resnet")}
    gap = ms["se_resnet"] / ms["resnet"] - 1
    macs = {k: c[k]["macs"] for k in ALL_KEYS}
    top, low = max(macs, key=macs.get), min(macs, key=macs.get)
    phrases = [f"{c['densenet']['params'] / c['resnet']['params']:.0%} of the ResNet's parameters",
               f"{c['densenet']['macs'] / c['resnet']['macs']:.0%} of its multiply-accumulates",
               f"reaches {pct(acc['densenet'])} against the ResNet's {pct(acc['resnet'])}",
               f"({(acc['densenet'] - acc['resnet']) * 100:+.1f} points)",
               f"add {c['se_resnet']['params'] - c['resnet']['params']:,} parameters",
               f"({c['se_resnet']['params'] / c['resnet']['params'] - 1:+.1%})",
               f"{c['se_resnet']['macs'] / c['resnet']['macs'] - 1:+.2%} compute",
               f"256 images take the SE-ResNet {ms['se_resnet']:.1f} ms and the ResNet {ms['resnet']:.1f} ms",
               f"The {label(top)} costs {x(macs[top] / macs[low])} the compute of the {label(low)}"]
    if abs(gap) >= 0.05:
        phrases.append(f"{abs(gap):.0%} {'longer' if gap > 0 else 'less time'}")
    accounted(text, phrases)
    # The direction the text states is the direction the numbers show.
    assert ("longer" in text) == (gap >= 0.05) and ("less time" in text) == (gap <= -0.05)


def test_quality_says_the_stored_accuracies(pages, stored):
    q = {label(k): stored["analysis"][k]["quality"] for k in ALL_KEYS if "quality" in stored["analysis"][k]}
    text = the(pages["Quality"], "Test accuracy:")
    gap = (q["SE-ResNet"]["accuracy"] - q["ResNet"]["accuracy"]) * 100
    accounted(text, [f"{label(k)} {pct(q[label(k)]['accuracy'])}" for k in KEYS]
              + [f"here it is {gap:+.{1 if abs(gap) >= 0.1 else 2}f} points"])

    classes = stored["joint"]["classes"]
    per_class = np.array([r["per_class"] for r in q.values()]).mean(0)
    text = the(pages["Quality"], "Averaged over the networks")
    phrases = [f"{classes[per_class.argmin()]} is the hardest class ({per_class.min():.0%})",
               f"{classes[per_class.argmax()]} the easiest ({per_class.max():.0%})"]
    for name, r in q.items():
        m = np.array(r["confusion"])
        np.fill_diagonal(m, 0)
        t, p = np.unravel_index(m.argmax(), m.shape)
        phrases.append(f"{name} {classes[t]} as {classes[p]} ({m[t, p]} times)")
    accounted(text, phrases)

    text = the(pages["Quality"], "Expected calibration error")
    accounted(text, [f"{name} {r['ece']:.3f}" for name, r in q.items()])

    text = the(pages["Quality"], "The 4 networks give the same answer")
    a, n = stored["joint"]["agreement"], stored["joint"]["n_test"]
    accounted(text, ["The 4 networks", f"same answer on {pct(a['same_answer'])} of the {n:,} test images",
                     f"right on {pct(a['all_right'])}", f"all wrong on {pct(a['all_wrong'])}"])


def test_feature_reuse_says_what_the_weights_show(pages):
    model, _ = ckpt.load_checkpoint(SHIPPED / "densenet", torch.device("cpu"), expected_key="densenet")
    rows = feature_reuse(model)
    layers = [r for r in rows if r["consumer"].startswith("layer") and r["consumer_index"] > 0]
    groups: dict[tuple, list[float]] = {}
    for r in layers:
        groups.setdefault((r["block"], r["consumer_index"]), []).append(r["mean_abs_weight"])
    weakest = min(min(v) / max(v) for v in groups.values())
    cls = sorted((r for r in rows if r["consumer"] == "classifier"), key=lambda r: r["source_index"])
    text = the(pages["Feature reuse"], "Every dense layer puts at least")
    phrases = [f"at least {weakest:.0%} as much", f"{x(cls[-1]['mean_abs_weight'] / cls[0]['mean_abs_weight'])} as",
               "under 10%"]  # the threshold the text names: the code's findings.IGNORED
    accounted(text, phrases)
    # The words agree with the number: "nearly ignored" only below the threshold the text names.
    assert ("some earlier features are nearly ignored" in text) == (weakest < 0.1)


def test_what_every_stage_sees_states_the_shapes_it_draws(pages):
    text = the(pages["What every stage sees"], "**What to take away.**")
    phrases = []
    for key in KEYS:
        model, _ = ckpt.load_checkpoint(SHIPPED / key, torch.device("cpu"), expected_key=key)
        found = stage_maps(model, torch.zeros(1, 3, 32, 32))
        (c0, h0, w0), (c1, h1, w1) = found[0].maps.shape, found[-1].maps.shape
        phrases.append(f"{label(key)} from {c0} maps of {h0}x{w0} to {c1} of {h1}x{w1}")
    accounted(text, phrases)


def test_unfamiliar_inputs_say_the_stored_rates(pages, stored):
    records = {label(k): stored["config"][k]["unfamiliar"] for k in KEYS}
    text = next(p for p in pages["Unfamiliar inputs"] if "The threshold keeps" in p)
    rates = [r["held_out_rate"] for r in records.values()]
    ns = sorted({round(1 / (1 - r)) for r in rates})
    kinds = list(next(iter(records.values()))["flagged"])
    share = {k: {n: r["flagged"][k] for n, r in records.items()} for k in kinds}
    gap = max(kinds, key=lambda k: max(share[k].values()) - min(share[k].values()))
    hi, lo = max(share[gap], key=share[gap].get), min(share[gap], key=share[gap].get)
    phrases = [f"keeps {min(rates):.1%} to {max(rates):.1%} of held-out",
               f"(the aim: {next(iter(records.values()))['rate']:.0%})", f"about 1 in {ns[0]} to {ns[-1]} real",
               f"{hi} flags {share[gap][hi]:.0%} of it, {lo} {share[gap][lo]:.0%}"]
    if any(v >= 0.9 for by in share.values() for v in by.values()):
        phrases.append("at least 90% of the")  # the share the text counts as "flags that kind": findings.kinds' own
    accounted(text, phrases)
    assert "in 20" not in text


def test_unfamiliar_inputs_say_how_often_real_photos_are_flagged(pages, stored):
    records = {label(k): stored["config"][k]["unfamiliar"] for k in KEYS}
    found = {n: r["photos"] for n, r in records.items() if "photos" in r}
    if not found:
        pytest.skip("the shipped thresholds were set without real photos")
    text = the(pages["Unfamiliar inputs"], "**On real photos of the ten classes**")

    def span(key):
        lo, hi = (f"{f(p[key] for p in found.values()):.0%}" for f in (min, max))
        return lo if lo == hi else f"{lo} to {hi}"

    first = next(iter(found.values()))
    phrases = [f"({first['n']} of them)", f"flags {span('flagged_at_test_rate')}",
               f"at least {first['rate']:.0%} of the photos", f"half, {span('flagged_unseen')} of them"]
    if all("auroc" in p for p in found.values()):  # judged photo against photo: the chosen method's AUROC
        method = next(iter(records.values()))["method"]
        a = [p["auroc"][method]["auroc"] for p in found.values()]
        phrases += [f"Against {first['other_n']} photos", f"AUROC of {min(a):.2f} to {max(a):.2f}",
                    f"flags {span('other_flagged_unseen')} of those photos"]
    accounted(text, phrases)


def test_every_why_view_is_drawn_and_only_the_open_one(pages):
    assert set(WHY_TABS) <= set(pages) and all(pages[v] for v in WHY_TABS)


def test_a_drifted_number_is_caught():
    """The check itself: a paragraph with one number more than its measurements fails."""
    accounted("CNN 1.5x and ResNet 7.1x.", ["CNN 1.5x", "ResNet 7.1x"])
    with pytest.raises(AssertionError, match="no measurement accounts for"):
        accounted("CNN 1.5x and ResNet 7.1x, one in 20.", ["CNN 1.5x", "ResNet 7.1x"])
    with pytest.raises(AssertionError):
        accounted("CNN 1.6x.", ["CNN 1.5x"])
