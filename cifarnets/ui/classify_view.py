"""The Classify page's pieces: where images come from, and one card per classified image."""

from __future__ import annotations

import hashlib

import streamlit as st
from PIL import Image, ImageDraw

from ..data.images import ImageError, formats_text
from ..examples import list_examples
from ..predict import HALF, Prepared, Result, read_file, unique_names
from ..prose import one_in
from ..store.checkpoints import Entry
from ..unfamiliar.calibration import Verdict
from ..unfamiliar.scores import METHODS
from . import resources, share
from .charts import network_color, top5_chart
from .pictures import camera, enlarge, preview, uploader


def gather_inputs() -> list[tuple[str, bytes]]:
    """(unique name, bytes) of every image the user gave: uploads, then examples, then the camera. In public
    mode the uploads and the camera are within the caps (pictures.uploader); the examples are the app's own."""
    # The examples chosen are in the URL: a shared link shows the same images (uploads are not in it).
    share.check("examples", list_examples(), "the example", format_func=lambda e: e.caption, multi=True)
    left, right = st.columns([3, 2])
    files = uploader(left, f"Upload images ({formats_text()})", "uploads", multiple=True)
    examples = right.multiselect("Or pick bundled examples", list_examples(), format_func=lambda e: e.caption,
                                 key="examples", placeholder="CIFAR-10 test images and real photos",
                                 bind="query-params")
    taking_pictures = right.toggle("Take a picture with the camera", key="camera_on")
    for example in examples:
        try:
            files.append((example.name, read_file(example.path)))
        except ImageError as e:
            st.error(str(e))
    if taking_pictures:
        files += [("camera.jpg", raw) for _, raw in camera(st, "camera")]
    names = unique_names([name for name, _ in files])
    return [(name, raw) for name, (_, raw) in zip(names, files, strict=True)]


FAMILIAR = ":gray-badge[looks like CIFAR-10]"  # neutral: it says nothing about whether the answer is right
UNFAMILIAR = ":orange-badge[unlike CIFAR-10]"


def verdict_line(verdict: Verdict | None) -> tuple[str, str | None]:
    """(the badge under a network's answer, its tooltip): unlike CIFAR-10, looks like it, or no verdict."""
    if verdict is None:
        return ":gray-badge[no unfamiliarity check]", "This network is not calibrated: see the note above the cards."
    how = (f"{METHODS[verdict.method]}: {verdict.score:.3g}, against a threshold of {verdict.threshold:.3g} that "
           f"{verdict.rate:.0%} of CIFAR-10 test images stay under."
           + (" The picture has no structure at all (one flat colour, or noise), or is smaller than 32x32: "
              "unfamiliar to every network." if verdict.plain else ""))
    return (UNFAMILIAR if verdict.unfamiliar else FAMILIAR), how


def photos_line(entries: dict[str, Entry]) -> None:
    """Why photos are answered worse than Home's test accuracy, and by how much, from the stored figures: the real-photo
    check's over the development set, each with its interval (`photos --write`)."""
    figures = [(e, f) for e in entries.values() if e.ok and e.test_acc is not None and (f := e.record.photos)]
    gaps = [100 * (e.test_acc - f.accuracy) for e, f in figures]
    by = (f": here {round(min(gaps))} to {round(max(gaps))} points fewer right than the test accuracy on Home, "
          "which shows both") if gaps else ""
    on = ""
    if figures:
        each = [f"{e.label} {f.accuracy:.0%} ({f.interval[0]:.0%} to {f.interval[1]:.0%})" for e, f in figures]
        on = (f" Of {figures[0][1].n} real photos of the ten classes, class-balanced with 90% intervals: "
              + ", ".join(each) + ".")
    st.caption("Photos are harder than CIFAR-10's own images: shrunk to 32x32 they differ in framing, blur, colour "
               f"and compression from the pictures the networks learnt from{by}.{on}")


def badges_line(entries: dict[str, Entry]) -> None:
    """What the two badges mean, in words, above the cards: a tooltip never shows on a phone. With how often they
    are wrong, from the stored calibration: CIFAR-10 test images and real photos of the ten classes flagged, and
    photos of other things that pass (each counted on photos that did not set the threshold)."""
    records = [c.raw for e in entries.values() if e.ok and (c := e.record.unfamiliar)]
    rates = [r["held_out_rate"] for r in records if isinstance(r.get("held_out_rate"), float)]
    found = [r["photos"] for r in records if isinstance(r.get("photos"), dict)]
    photos = [p["flagged_unseen"] for p in found if isinstance(p.get("flagged_unseen"), float)]
    other = [p["other_flagged_unseen"] for p in found if isinstance(p.get("other_flagged_unseen"), float)]
    often = (f" (so do about {one_in([1 - r for r in rates])} real CIFAR-10 test images"
             + (f" and {one_in(photos)} real photos of the ten classes" if any(photos) else "") + ")") if rates else ""
    missed = (f" It catches only {span(other)} of photos of other things (objects, food, scenes, people): a photo "
              "of something else often looks like CIFAR-10 to them.") if other else ""
    st.markdown(f"Under each answer, {FAMILIAR} means the image resembles the photos that network learned from: "
                f"it does **not** mean the answer is right. {UNFAMILIAR} means it does not resemble them{often}, so "
                f"the answer is likely a guess.{missed}")


def span(shares: list[float]) -> str:
    """"41%" or "29% to 42%"."""
    lo, hi = f"{min(shares):.0%}", f"{max(shares):.0%}"
    return lo if lo == hi else f"{lo} to {hi}"


def uncalibrated_note(notes: dict[str, str], entries: dict[str, Entry]) -> None:
    """One line for the networks that cannot say whether an input is unfamiliar, and why. A student's own run is
    told in words: the command that calibrates it names a folder of the server, which a student cannot run."""
    mine = resources.visitor().adopted()
    runs = [entries[k].label for k in notes if k in mine]
    if runs:
        st.caption(f"Your run{'s' if len(runs) > 1 else ''} ({', '.join(runs)}) cannot say whether an image is "
                   "unlike CIFAR-10: that check is measured once for each network, on the test split and real "
                   "photos, and a run trained here has not been: its badge reads \"no unfamiliarity check\".")
    others = {k: why for k, why in notes.items() if k not in mine}
    if others:
        st.caption("Unfamiliarity check off for " + "; ".join(f"{entries[k].label}: {why}"
                                                              for k, why in others.items()))


# At phone width Streamlit stacks columns one under another, and a card was four screens tall: here they
# wrap two by two instead (your image beside what the networks see, then the four answers as a 2x2 grid).
# The Stress test page's rows of four answers (containers keyed grid-...) wrap the same way.
PHONE_LAYOUT = """<style>
@media (max-width: 640px) {
  :is([class*="st-key-card-"], [class*="st-key-grid-"]) [data-testid="stHorizontalBlock"] {
    flex-wrap: wrap; row-gap: 0.75rem; }
  :is([class*="st-key-card-"], [class*="st-key-grid-"]) [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {
    flex: 1 1 calc(50% - 1rem) !important; min-width: calc(50% - 1rem) !important;
    max-width: calc(50% - 0.5rem); }
}
/* The examples picked wrap onto more lines instead of running under the clear button. */
.st-key-examples [data-testid="stMultiSelectTagsContainer"] {
  flex-wrap: wrap; height: auto !important; overflow: visible !important; }
.st-key-examples [data-testid="stMultiSelect"] div:has(> [data-testid="stMultiSelectTagsContainer"]),
.st-key-examples [data-testid="stMultiSelect"] div:has(> div > [data-testid="stMultiSelectTagsContainer"]) {
  height: auto !important; max-height: none !important; }
</style>"""


def phone_layout() -> None:
    """Compact cards at phone width, and the examples picked wrapping instead of hiding."""
    st.html(PHONE_LAYOUT)


def _scaled_box(prepared: Prepared) -> tuple[int, int, int, int]:
    """The crop box in the preview's pixels (the preview is the picture shrunk)."""
    f = prepared.image.size[0] / prepared.size[0]
    return tuple(round(v * f) for v in prepared.box)


def marked(prepared: Prepared) -> Image.Image:
    """The preview with what the networks do not see dimmed, and the square they see outlined; the picture
    itself where they see all of it (a tiny one blown up in blocks)."""
    if prepared.too_small:  # shown in blocks, as the networks get it, not smoothed by the browser
        w, h = prepared.image.size
        return prepared.image.resize((w * (k := -(-128 // min(w, h))), h * k), Image.Resampling.NEAREST)
    if prepared.seen_share >= 1:
        return prepared.image
    box = _scaled_box(prepared)
    out = Image.blend(prepared.image, Image.new("RGB", prepared.image.size, (255, 255, 255)), 0.6)
    out.paste(prepared.image.crop(box), box[:2])
    ImageDraw.Draw(out).rectangle(box, outline=(255, 75, 75), width=max(2, round(max(out.size) / 150)))
    return out


def seen_caption(prepared: Prepared) -> str:
    if prepared.seen_share >= 1:
        return "your image: the networks see all of it"
    return f"your image: the networks see only the square marked, {prepared.seen_share:.0%} of it"


def result_card(result: Result, entries: dict[str, Entry]) -> None:
    """A readable image, the 32x32 input the networks see, and each network's top-1, verdict and top-5."""
    # Keyed, so the phone layout below finds the card; the name's hash, since a key becomes a CSS class.
    with st.container(border=True, key=f"card-{hashlib.sha1(result.name.encode()).hexdigest()[:12]}"):
        flag = " :orange-badge[networks disagree]" if result.disagree else ""
        st.markdown(f"**{result.name}**{flag}")
        # Before any answer: where the networks are known to be unreliable, in words.
        for caution in result.cautions({k: e.label for k, e in entries.items()}):
            st.warning(caution, icon=":material/help:")
        prepared = result.prepared
        if prepared.seen_share < HALF:  # a strip in a narrow column says nothing: the whole width, crop marked
            st.image(preview(marked(prepared), 1400), caption=seen_caption(prepared), width="stretch")
        # A fixed grid (image, input, then every network in its place) so cards line up under each other.
        cols = st.columns([1, 1] + [1.4] * len(entries))
        if prepared.seen_share < HALF:
            cols[0].image(preview(prepared.image.crop(_scaled_box(prepared))), caption="the part they see",
                          width="stretch")
        else:
            cols[0].image(preview(marked(prepared)), caption=seen_caption(prepared), width="stretch")
        cols[1].image(enlarge(result.prepared.pixels), caption="what the networks see (32x32)", width="stretch")
        for col, (key, entry) in zip(cols[2:], entries.items(), strict=True):
            top = result.top5.get(key)
            if not top:
                col.markdown(f"**{entry.label}**  \nnot loaded")
                continue
            col.markdown(f"**{resources.answerer_label(entry)}**  \n**{top[0][0]}** · {top[0][1]:.0%}")
            badge, how = verdict_line(result.verdicts.get(key))
            col.markdown(badge, help=how)
            col.altair_chart(top5_chart(top, network_color(key)), width="stretch")
