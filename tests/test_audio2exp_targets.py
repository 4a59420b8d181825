"""audio2exp targets: visemes, coarticulation, the rig for ARKit and non-ARKit models."""
import numpy as np
import torch

from audio2exp.phonemes import VISEME_INDEX, coarticulate, frame_labels, phones_to_segments
from audio2exp.rig import fitted_rig, lip_opening, model_rig, resolve_channels, _mouth
from face3d.models import MorphableModel


def test_diphthongs_split_and_arpabet_maps():
    s = phones_to_segments([0.0], [0.2], ["'aI"])
    assert [int(v) for v in s.viseme] == [VISEME_INDEX["aa"], VISEME_INDEX["ih"]]
    assert s.end[0] == s.start[1] and s.end[-1] == 0.2
    a = phones_to_segments([0, 0.1], [0.1, 0.3], ["B", "OW1"], alphabet="arpabet")
    assert [int(v) for v in a.viseme] == [VISEME_INDEX[v] for v in ("PP", "oh", "ou")]


def test_coarticulation_closes_lips_at_a_bilabial(character_model):
    m = character_model
    rig = model_rig(m)
    # "a b a" with a very short /b/ (20 ms, shorter than a 25 fps frame): open vowels pull the
    # blend open, the closure rule must still close the lips.
    seg = phones_to_segments([0.0, 0.2, 0.3, 0.32], [0.2, 0.3, 0.32, 0.5], ["_", "a", "b", "a"])
    t = np.arange(13) / 25
    w = coarticulate(seg, t)
    assert np.allclose(w.sum(1), 1)
    e, j = rig.apply(w)
    gap = lip_opening(m, torch.as_tensor(e), torch.as_tensor(j))
    lab = frame_labels(seg, t)
    closed = gap.min()
    vowel = gap[(lab == VISEME_INDEX["aa"])].max()
    k = int(np.argmin(np.abs(t - 0.31)))
    assert gap[k] == closed and closed <= 0.0 + 1e-3 and vowel > 5.0, gap
    # neighbours blend: the frame before the /b/ is mostly vowel, with some anticipation of the next shape
    assert 0 < w[k - 1, VISEME_INDEX["aa"]] < 1


def test_rig_resolves_names_across_side_conventions():
    names = ["jawOpen", "mouthSmile", "mouthPress_L", "mouthPress_R", "cheekPuff_L", "cheekPuff_R"]
    res, missing = resolve_channels(names, {"mouthSmile_L": 0.4, "mouthSmile_R": 0.4, "cheekPuff": 0.2, "mouthPucker": 1})
    assert res == {1: 0.4, 4: 0.2, 5: 0.2} and missing == ["mouthPucker"]


def test_fitted_rig_for_a_model_without_arkit_names(character_model):
    ref = character_model
    K = ref.n_expression
    Q = torch.linalg.qr(torch.randn(K, K, generator=torch.Generator().manual_seed(0)))[0]
    # The same head with "PCA" expressions: basis mixed by an orthogonal matrix, names exp00...
    pca = MorphableModel(name="pca", template=ref.template, faces=ref.faces, identity_basis=ref.identity_basis,
                         expression_basis=torch.einsum("vck,kj->vcj", ref.expression_basis, Q),
                         expression_names=[f"exp{i:02d}" for i in range(K)], joint_regressor=ref.joint_regressor,
                         skin_weights=ref.skin_weights, landmarks=ref.landmarks, regions=ref.regions)
    rig = model_rig(pca, reference=ref)
    assert rig.method == "fitted"
    want = _mouth(ref, torch.as_tensor(model_rig(ref).expression)) - _mouth(ref, torch.zeros(1, K))
    got = _mouth(pca, torch.as_tensor(rig.expression)) - _mouth(pca, torch.zeros(1, K))
    err = (got - want).norm(dim=-1).max()
    assert err < 0.05 * want.norm(dim=-1).max(), err
    direct = fitted_rig(pca, ref)
    assert np.allclose(direct.expression, rig.expression)
