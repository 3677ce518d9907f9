"""The memory bank's nearest-neighbour search: the bfloat16 way finds the reference distances."""

from __future__ import annotations

import torch

from models.datasets import load_dataset, read_image
from models.features import InputSpec, PatchFeatures
from models.patchcore import NearestSearch, nearest_distances


def _features(paths, spec, net):
    with torch.inference_mode():
        out = [net(spec.tensor(read_image(p, color=False))) for p in paths]
    return torch.cat([f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]) for f in out])


def test_bf16_search_gives_the_reference_distances(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    spec = InputSpec((64, 64), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), grey=True)
    net = PatchFeatures((4, 10)).eval()
    goods = [s.image for s in ds.samples if not s.is_defect]
    bank = _features(goods[:20], spec, net)
    queries = _features([s.image for s in ds.samples[-8:]] + goods[20:28], spec, net)
    search = NearestSearch(bank, torch.device("cpu"))
    search.use_bf16 = True  # whichever way this CPU measured faster, check the bfloat16 one
    ref = nearest_distances(queries, search.bank, search.bank_sq)
    fast = search(queries)
    assert fast.shape == ref.shape
    # Exact float32 distances to the candidates: equal where the nearest row was among them, never smaller.
    assert torch.all(fast >= ref - 1e-4)
    assert (torch.isclose(fast, ref, rtol=1e-5, atol=1e-5)).float().mean() > 0.99
    assert abs(float(fast.max()) - float(ref.max())) <= 1e-4 * float(ref.max())  # the part score
    search.use_bf16 = False
    assert torch.equal(search(queries), ref)


def test_a_bank_smaller_than_the_candidate_count():
    torch.manual_seed(0)
    bank, queries = torch.randn(2, 8), torch.randn(5, 8)
    search = NearestSearch(bank, torch.device("cpu"))
    search.use_bf16 = True
    torch.testing.assert_close(
        search(queries), nearest_distances(queries, search.bank, search.bank_sq), rtol=1e-5, atol=1e-5
    )
