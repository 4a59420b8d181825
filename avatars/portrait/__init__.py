"""Dynamic neural portraits (after CoDyNeRF): a video of one person -> an animatable NeRF head.

Pipeline: :func:`prepare` (track, crop, masks) -> :func:`train` (shell-sampled, mesh-embedded
tri-plane field with normal-conditioned colour) -> :func:`load_portrait` -> re-animate with
:mod:`avatars.portrait.render` (sequence, reenactment, speech, turntable) and score with
:mod:`avatars.portrait.evaluate`.
"""
from avatars.portrait.data import PortraitData, prepare
from avatars.portrait.embedding import MeshEmbedding
from avatars.portrait.model import Portrait, PortraitConfig
from avatars.portrait.train import TrainConfig, load_portrait, save_portrait, train

__all__ = ["PortraitData", "prepare", "MeshEmbedding", "Portrait", "PortraitConfig", "TrainConfig", "train",
           "load_portrait", "save_portrait"]
