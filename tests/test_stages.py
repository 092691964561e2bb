"""What every stage sees: feature maps from forward_intermediates, ranked, paged and drawn, without touching
the shared networks."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from cifarnets.analysis.stages import TILE, page, page_image, stage_maps
from cifarnets.models import build

STAGES = {"cnn": ["conv1", "conv2"], "resnet": ["stem", "layer1", "layer2", "layer3"],
          "densenet": ["stem", "block1", "transition1", "block2", "transition2", "block3"],
          "se_resnet": ["stem", "layer1", "layer2", "layer3"]}


def shared(key: str, seed: int = 0) -> torch.nn.Module:
    """A network as the app holds it: weights loaded, eval mode."""
    torch.manual_seed(seed)
    return build(key).eval()


def image(seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("key", STAGES)
def test_every_stage_most_active_channel_first(key):
    model = shared(key)
    stages = stage_maps(model, image())
    assert [s.name for s in stages] == STAGES[key]
    for s in stages:
        assert sorted(s.order.tolist()) == list(range(s.channels))
        assert np.all(np.diff(s.activity) <= 0)
        strength = np.abs(s.maps).mean(axis=(1, 2))
        assert np.allclose(s.activity, strength[s.order])
    with torch.no_grad():  # the same maps as the network's own forward pass hands back
        direct = model.forward_intermediates(image()).stages
    for s in stages:
        assert np.array_equal(s.maps, direct[s.name][0].numpy())


def test_the_shared_network_is_left_as_it_was():
    model = shared("se_resnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stage_maps(model, image())
    assert not model.training
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched


def test_threads_on_one_shared_network_get_what_one_thread_gets():
    model = shared("resnet")
    images = [image(seed) for seed in range(6)]
    alone = [[s.maps for s in stage_maps(model, x)] for x in images]
    together: dict[int, list] = {}
    errors = []

    def look(i):
        try:
            for _ in range(3):
                together[i] = [s.maps for s in stage_maps(model, images[i])]
                model(images[i])  # others classify meanwhile, on the same network
        except Exception as e:  # noqa: BLE001 - any failure in a thread is the finding
            errors.append(e)

    threads = [threading.Thread(target=look, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, maps in enumerate(alone):
        assert all(np.array_equal(a, b) for a, b in zip(maps, together[i], strict=True))


def test_pages_and_pictures():
    stem = stage_maps(shared("resnet"), image())[0]  # 16 channels of 32x32
    assert page(stem, 0, 8).tolist() == stem.order[:8].tolist()
    assert page(stem, 8, 8).tolist() == stem.order[8:].tolist()
    assert len(page(stem, 16, 8)) == 0 and page_image(stem, 16, 8) is None
    picture = page_image(stem, 0, 8)
    assert picture.size == (4 * TILE + 3 * 3, 2 * TILE + 3)  # 4 tiles a row, 3-pixel gaps
    one = page_image(stem, 0, 8, scale="each channel")
    assert one.size == picture.size and np.asarray(one).tolist() != np.asarray(picture).tolist()
    with pytest.raises(ValueError, match="colour scale"):
        page_image(stem, 0, 8, scale="rainbow")
