"""Face detection, 68-point landmarks with confidences, and the 240x240 crops the encoder sees."""
