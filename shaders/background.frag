#version 330
uniform sampler2D frame;
uniform float dim;
in vec2 v_uv;
out vec4 f_color;
void main() {
    f_color = vec4(texture(frame, v_uv).rgb * dim, 1.0);
}
