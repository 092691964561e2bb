"""The Stress test page's pieces: one image under a corruption and under attack, and the stored measurements."""

from __future__ import annotations

import hashlib
import io

import altair as alt
import numpy as np
import streamlit as st
from PIL import Image

from ..examples import subject
from ..models import label
from ..paths import checkpoints_dir
from ..predict import Prepared
from ..store.checkpoints import Entry
from ..stress import apply, attacks, corruptions, stress_sentences, stressfile
from . import pictures, share
from .charts import network_colors
from .classify_view import phone_layout, verdict_line
from .pictures import enlarge

KINDS = {"PGD-10": "pgd", "FGSM": "fgsm"}
WAY_COLOURS = {"holds": "green", "now right": "blue", "now wrong": "red", "changed, still wrong": "orange",
               "changed": "orange"}  # apply.which_way's words
SIDE = 128  # pixels a side for each 32x32 picture


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def pick_image() -> Prepared | None:
    """An example (its choice is in the URL as `image`), an upload or the camera; which one is in use, said."""
    image = pictures.pick_image("image", "stress_upload", "cifar10-test-ship.jpg", camera_key="stress_camera")
    if image is not None and not _is_example(image):
        st.info(f"In use: your own image, **{image.name}**. The example picked above is set aside while it is there.",
                icon=":material/image:")
    return image


def _is_example(image: Prepared) -> bool:
    example = st.session_state.get("image")
    own = st.session_state.get("stress_upload") is not None or st.session_state.get("stress_camera_on")
    return not own and example is not None and example.name == image.name


def truth(image: Prepared, classes: list[str]) -> str | None:
    """What the picture shows, so that a changed answer can be called right or wrong: known for a bundled example,
    else the user's say (not said at first); None when unknown."""
    known = subject(image.name) if _is_example(image) else None
    if known in classes:
        st.caption(f"The picture shows a **{known}**: an answer that changes below is called now right or now wrong.")
        return known
    return st.selectbox("What does the picture show? (so that a changed answer can be called right or wrong)",
                        [None, *classes], format_func=lambda c: "not said" if c is None else c,
                        key=f"truth-{_digest(image.pixels)}")


def _way(before: str, after: str, shown: str | None) -> str:
    way = apply.which_way(before, after, shown)
    return f":{WAY_COLOURS[way]}-badge[{way}]"


def _digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(pixels.tobytes()).hexdigest()[:16]


def _networks_stamp(entries: dict[str, Entry]) -> tuple:
    """What keys a cached result to the networks that made it: each one's folder (a retrained one is another)."""
    return tuple((k, str(e.path), e.config.get("date")) for k, e in entries.items() if e.ok)


@st.cache_data(max_entries=256, show_spinner=False)
def _ladder(_entries, stamp: tuple, digest: str, _pixels: np.ndarray, name: str):
    images = apply.ladder(_pixels, name)
    return images, apply.seen(_entries, images)


@st.cache_data(max_entries=256, show_spinner=False)
def _attacked(_entries, stamp: tuple, digest: str, _pixels: np.ndarray, kind: str, eps: int):
    return apply.attack_every(_entries, _pixels, kind, eps)


@st.cache_data(max_entries=64, show_spinner=False)
def _smallest(_entries, stamp: tuple, digest: str, _pixels: np.ndarray):
    return apply.smallest_every(_entries, _pixels)


def corruption_view(image: Prepared, entries: dict[str, Entry], shown: str | None) -> None:
    names = list(corruptions.NAMES)
    share.check("corruption", names, "the corruption", format_func=corruptions.title)
    share.check("severity", range(corruptions.SEVERITIES + 1), "the severity")
    left, right = st.columns([2, 3])
    name = left.selectbox("Corruption", names, format_func=corruptions.title, key="corruption", bind="query-params")
    severity = right.slider("Severity (0: the image itself)", 0, corruptions.SEVERITIES, 3, key="severity",
                            bind="query-params")
    images, seen = _ladder(entries, _networks_stamp(entries), _digest(image.pixels), image.pixels, name)
    phone_layout()  # the rows below wrap two by two on a phone instead of stacking one under another
    cols = st.container(key="grid-corrupted").columns([1.2] + [1] * len(seen))
    cols[0].image(enlarge(images[severity], SIDE), caption=f"what the networks see: severity {severity}")
    cols[0].download_button("Download (PNG, 32x32)", png(images[severity]), mime="image/png", on_click="ignore",
                            file_name=f"{image.name.rsplit('.', 1)[0]}-{name}-{severity}.png", key="corrupted_png")
    for col, (key, answers) in zip(cols[1:], seen.items(), strict=True):
        a = answers[severity]
        changed = apply.first_change(answers)
        col.markdown(f"**{entries[key].label}**  \n**{a.label}** · {a.prob:.0%}")
        badge, how = verdict_line(a.verdict)
        col.markdown(badge, help=how)
        col.markdown(f"clean: {answers[0].label}; " + (
            f"first changes at **severity {changed}**, to {answers[changed].label} "
            + _way(answers[0].label, answers[changed].label, shown) if changed
            else "keeps its answer through severity 5"))
    st.caption("Every severity of " + corruptions.title(name).lower() + ", 0 to 5, as the networks see it; each "
               "network's answer in turn:")
    strip = st.container(key="grid-severities").columns(len(images))
    for s, col in enumerate(strip):
        col.image(enlarge(images[s], 64), caption=str(s))
        # whole names: "SE-ResNe" was cut
        col.caption("  \n".join(f"{entries[k].label}: {seen[k][s].label}" for k in seen))


def attack_view(image: Prepared, entries: dict[str, Entry], shown: str | None) -> None:
    share.check("attack", list(KINDS), "the attack")
    share.check("eps", range(attacks.EPS_MAX + 1), "the budget")
    left, right = st.columns([2, 3])
    kind = left.segmented_control("Attack", list(KINDS), default="PGD-10", key="attack", bind="query-params",
                                  required=True)
    eps = right.slider("ε, the most any pixel may change, in 1/255", 0, attacks.EPS_MAX, 2, key="eps",
                       bind="query-params")
    found = _attacked(entries, _networks_stamp(entries), _digest(image.pixels), image.pixels, KINDS[kind], eps)
    cols = st.container(key="grid-attacked").columns(len(found))
    for col, (key, a) in zip(cols, found.items(), strict=True):
        col.markdown(f"**{entries[key].label}**  \n{a.before} → **{a.after}** · {a.prob:.0%} "
                     + _way(a.before, a.after, shown))
        col.image(enlarge(a.image, SIDE), caption=f"perturbed against {entries[key].label}")
        col.image(enlarge(a.picture, SIDE), caption=f"the change, x{a.scale} around grey")
        col.download_button("Download (PNG, 32x32)", png(a.image), mime="image/png", on_click="ignore",
                            file_name=f"{image.name.rsplit('.', 1)[0]}-{KINDS[kind]}{eps}-{key}.png",
                            key=f"adv_png_{key}")
    st.markdown("**The smallest ε that changes each answer** (PGD-10, ε doubling then bisected, up to "
                f"{attacks.EPS_MAX}/255):")
    if st.button(f"Find it for all {len(entries) if len(entries) != 4 else 'four'}", key="search"):
        st.session_state["stress_searched"] = _digest(image.pixels)
    if st.session_state.get("stress_searched") == _digest(image.pixels):
        broken = _smallest(entries, _networks_stamp(entries), _digest(image.pixels), image.pixels)
        cols = st.container(key="grid-smallest").columns(len(broken))
        for col, (key, b) in zip(cols, broken.items(), strict=True):
            if b.eps is None:
                col.markdown(f"**{entries[key].label}**: holds up to {attacks.EPS_MAX}/255")
                continue
            after = entries[key].classes[b.label]
            before = apply.seen({key: entries[key]}, image.pixels[None])[key][0].label
            col.markdown(f"**{entries[key].label}**: ε = **{b.eps}/255** → {after} · {b.prob:.0%} "
                         + _way(before, after, shown))
            col.image(enlarge(b.image.permute(1, 2, 0).cpu().numpy(), SIDE))


def stored() -> dict | None:
    return stressfile.read(checkpoints_dir())


def measured_view(record: dict | None, entries: dict[str, Entry]) -> None:
    if record is None:
        st.info("Nothing measured on the test split yet. Run (about half an hour on 2 CPU cores):")
        st.code("python -m cifarnets stress --data /path/to/cifar10", language="bash")
        return
    for key, e in entries.items():
        measured = record["networks"].get(key)
        if e.ok and measured and e.record.stale(measured.get("checkpoint")):
            st.caption(f":orange[{e.label} in use is not the checkpoint these numbers were measured on: rerun "
                       "`python -m cifarnets stress` for its numbers.]")
    nets = record["networks"]
    measured = len(next(iter(nets.values()))["corruptions"])
    st.markdown(f"Measured on {record['images']:,} of the {record['of']:,} test images ({record['sample']}), "
                f"with our reimplementation of CIFAR-10-C: {measured} of its corruptions at 5 severities. "
                + stress_sentences.left_out_text())
    st.dataframe(stress_sentences.table(record), hide_index=True, column_config={
        c: st.column_config.NumberColumn(c, format="percent") for c in
        ("clean", "corrupted (mean)", "drop", "CIFAR-10-C error", "kept")})
    rows = [{"network": label(k), "severity": s + 1, "corruption": corruptions.title(name), "accuracy": acc}
            for k, n in nets.items() for name, accs in n["corruptions"].items() for s, acc in enumerate(accs)]
    st.altair_chart(_severity_chart(rows), width="stretch")
    st.markdown(stress_sentences.corruptions_text(record))
    if "transfer" in record:
        transfer_view(record["transfer"])


def _severity_chart(rows: list[dict]) -> alt.Chart:
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("severity:O", title="severity"), color=network_colors(sorted({r["network"] for r in rows})))
    mean = base.mark_line(point=True).encode(y=alt.Y("mean(accuracy):Q", title="accuracy (mean over corruptions)",
                                                      axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
                                             tooltip=["network:N", "severity:O",
                                                      alt.Tooltip("mean(accuracy):Q", format=".1%")])
    return mean.properties(height=260)


def transfer_view(t: dict) -> None:
    st.subheader("Transfer: a perturbation made against one network, handed to the others")
    share.check("transfer_eps", [str(e) for e in t["eps"]], "the budget")
    eps = st.segmented_control("ε (in 1/255)", [str(e) for e in t["eps"]], default=str(max(t["eps"])),
                               key="transfer_eps", bind="query-params", required=True)
    rows = [{"made against": label(src), "handed to": label(tgt), "answers changed": v}
            for src, by_eps in t["fooled"].items() for tgt, v in by_eps[eps].items()]
    order = [label(k) for k in t["fooled"]]
    grid = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("handed to:N", sort=order), y=alt.Y("made against:N", sort=order))
    heat = grid.mark_rect().encode(color=alt.Color("answers changed:Q", scale=alt.Scale(domain=[0, 1],
                                                                                        scheme="oranges"),
                                                   legend=alt.Legend(format="%")))
    text = grid.mark_text().encode(text=alt.Text("answers changed:Q", format=".0%"))
    left, right = st.columns([3, 2])
    left.altair_chart((heat + text).properties(height=260), width="stretch")
    right.markdown(f"**Robust accuracy** ({t['attack'].upper()} against the network itself, {t['images']:,} test "
                   "images):")
    right.dataframe([{"network": label(k), "clean": t["clean"][k]} | {f"ε={e}/255": r[str(e)] for e in t["eps"]}
                     for k, r in t["robust"].items()], hide_index=True, column_config={
        c: st.column_config.NumberColumn(c, format="percent") for c in ["clean"] + [f"ε={e}/255" for e in t["eps"]]})
