"""Face model: ICT-FaceKit import, the compact model file, parameter layout and the multi-level model."""
