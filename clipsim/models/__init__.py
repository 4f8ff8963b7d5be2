"""Encoders f (image side) and g (text side): ``init`` and ``encode``."""

from clipsim.models.encoders import encode, init_encoder, init_encoders, normalize_rows

__all__ = ["encode", "init_encoder", "init_encoders", "normalize_rows"]
