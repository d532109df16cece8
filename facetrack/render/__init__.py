"""Image formation: camera, spherical-harmonics shading, point-based sampling and rasterizers."""
