#version 330
// Writes up to 8 interpolated float attributes into two RGBA32F targets.
in vec4 a0;
in vec4 a1;
layout(location = 0) out vec4 out0;
layout(location = 1) out vec4 out1;
void main() {
    out0 = a0;
    out1 = a1;
}
