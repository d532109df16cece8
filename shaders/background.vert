#version 330
// Full-viewport quad showing the input frame; texture row 0 (the image's top row) at the top. `view` (centre
// x, y in the frame's NDC, scale) zooms on the face; (0, 0, 1) shows the whole frame.
uniform vec3 view;
in vec2 in_pos;
out vec2 v_uv;
void main() {
    gl_Position = vec4((in_pos - view.xy) * view.z, 0.0, 1.0);
    v_uv = vec2((in_pos.x + 1.0) * 0.5, (1.0 - in_pos.y) * 0.5);
}
