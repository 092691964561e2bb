"""Views computed on the networks every session shares, from many threads at once, give what one thread gets.

The app keeps one eval-mode copy of each network for all sessions. A view that put a hook on it, or
switched its mode, would hand another session's activations to the wrong caller; here Grad-CAM, SE gates,
stage outputs and adversarial attacks (input gradients, PGD) run in threads beside plain classification,
on the same model objects.
"""

from concurrent.futures import ThreadPoolExecutor

import torch

from cifarnets.analysis import gradcam, se
from cifarnets.models import KEYS, build
from cifarnets.predict import probabilities
from cifarnets.store.checkpoints import Entry
from cifarnets.stress import attacks

ROUNDS = 6  # each job runs this many times in the pool, interleaved with every other job


def shared_networks() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {key: build(key).eval() for key in KEYS}


def jobs(models: dict[str, torch.nn.Module], images: torch.Tensor) -> dict[tuple, callable]:
    """(kind, network, image) -> a function computing that view as plain numbers."""
    entries = {key: Entry(key, None, model, {"classes": [str(i) for i in range(10)]}) for key, model in models.items()}
    out = {}
    for i in range(len(images)):
        x = images[i: i + 1]
        for key, model in models.items():
            out["cam", key, i] = lambda m=model, x=x, i=i: gradcam.grad_cam(m, x, target=i % 10).heat
            out["stages", key, i] = lambda m=model, x=x: [t.detach()
                                                          for t in m.forward_intermediates(x).stages.values()]
            # Attacks take gradients on the shared networks: with respect to the input only, in eval mode.
            pixels = (x * 60 + 128).clamp(0, 255).to(torch.uint8)
            out["gradient", key, i] = lambda m=model, p=pixels, i=i: attacks.input_gradient(
                m, p.float(), torch.tensor([i % 10]), views=2)
            out["pgd", key, i] = lambda m=model, p=pixels, i=i: attacks.pgd(m, p, torch.tensor([i % 10]), 4, steps=2,
                                                                             views=2)
        out["gates", "se_resnet", i] = lambda x=x: list(se.gates(models["se_resnet"], x).values())
        out["classify", "all", i] = lambda x=x: list(probabilities(entries, x).values())
    return out


def as_tensors(result) -> list[torch.Tensor]:
    return [torch.as_tensor(r) for r in (result if isinstance(result, list) else [result])]


def test_views_under_concurrent_sessions_equal_a_single_thread():
    torch.manual_seed(1)
    images = torch.randn(4, 3, 32, 32)
    models = shared_networks()
    work = jobs(models, images)
    alone = {name: as_tensors(job()) for name, job in work.items()}
    names = [name for _ in range(ROUNDS) for name in work]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda name: (name, as_tensors(work[name]())), names))
    for name, result in together:
        for got, want in zip(result, alone[name], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
    assert all(not m.training for m in models.values())  # no view switched a shared network's mode
    assert all(not m._forward_hooks and not m._forward_pre_hooks for net in models.values() for m in net.modules())
    assert all(p.grad is None for net in models.values() for p in net.parameters())  # no gradient left behind
