"""Geometry: rotations, similarity alignment, normals and mesh files (all lengths in mm)."""
from face3d.geometry.mesh_io import Mesh, MeshFormatError, load_mesh, read_obj, save_mesh, write_obj
from face3d.geometry.normals import face_normals, vertex_normals
from face3d.geometry.procrustes import apply_similarity, procrustes, similarity_to_matrix
from face3d.geometry.topology import faces_within
from face3d.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    rotation_angle_deg,
    skew,
)

__all__ = [
    "Mesh", "MeshFormatError", "load_mesh", "save_mesh", "read_obj", "write_obj",
    "face_normals", "vertex_normals", "faces_within",
    "procrustes", "apply_similarity", "similarity_to_matrix",
    "axis_angle_to_matrix", "axis_angle_to_quaternion", "euler_to_matrix", "matrix_to_axis_angle",
    "matrix_to_quaternion", "matrix_to_rotation_6d", "quaternion_to_axis_angle", "quaternion_to_matrix",
    "rotation_6d_to_matrix", "rotation_angle_deg", "skew",
]
