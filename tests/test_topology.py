"""Vertex and face subsets: geometry.faces_within and MorphableModel.region_mask."""
import pytest
import torch


def test_faces_within_keeps_only_faces_inside_the_mask():
    from face3d.geometry import faces_within

    faces = torch.tensor([[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    mask = torch.tensor([True, True, True, True, False])
    assert faces_within(faces, mask).tolist() == [[0, 1, 2], [1, 2, 3]]


def test_region_mask_unions_regions_and_reports_missing_ones(builtin_model):
    m = builtin_model
    mask = m.region_mask("lips", "eyes")
    assert mask.shape == (m.n_vertices,) and mask.dtype == torch.bool
    assert int(mask.sum()) == len(set(m.region("lips").tolist()) | set(m.region("eyes").tolist()))
    assert torch.equal(m.region_mask("lips", "no_such_region", missing_ok=True), m.region_mask("lips"))
    with pytest.raises(KeyError, match="no_such_region"):
        m.region_mask("no_such_region")
