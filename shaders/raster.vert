#version 330
// Pass-through: positions arrive in clip space (facetrack.render.camera.Camera.clip), so the CPU
// rasterizer and nvdiffrast see identical coordinates.
in vec4 in_clip;
in vec4 in_a0;
in vec4 in_a1;
out vec4 a0;
out vec4 a1;
void main() {
    gl_Position = in_clip;
    a0 = in_a0;
    a1 = in_a1;
}
