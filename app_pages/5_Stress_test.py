"""Stress test: break the four networks, side by side, with corruptions and adversarial examples."""

import streamlit as st

from cifarnets.stress import stress_sentences
from cifarnets.ui import resources, share, yours_view
from cifarnets.ui.stress_view import attack_view, corruption_view, measured_view, pick_image, stored, truth

st.title("Stress test")
st.markdown("The same picture, made harder: first by the corruptions of CIFAR-10-C (noise, blur, weather, digital "
            "artefacts), then by adversarial perturbations searched for against each network. Watch where each "
            "network gives way, and how differently.")
share.check_unknown(["image", "corruption", "severity", "attack", "eps", "transfer_eps"])
found = resources.entries()
resources.notice_hub()
resources.notice_missing(found)
loaded = {k: e for k, e in yours_view.with_yours(found).items() if e.ok}  # yours too, added on Classify
image = pick_image()
shown = truth(image, next(iter(loaded.values())).classes) if image is not None and loaded else None

st.header("Corruptions")
if image is not None and loaded:
    corruption_view(image, loaded, shown)

st.header("Adversarial examples")
yours_view.why_not("attacks")
if image is not None and loaded:
    attack_view(image, yours_view.attackable(loaded), shown)
st.markdown(f"**The lesson.** {stress_sentences.LESSON}")

st.header("Measured on the test split")
measured_view(stored(), found)
