#version 330
// mode: 0 shaded (estimated SH light), 1 albedo, 2 geometry (grey under a fixed light), 3 wireframe.
// overlay: weight of the photometric-error heat map.
uniform int mode;
uniform float overlay;
uniform float opacity;
in vec3 v_normal;
in vec3 v_albedo;
in vec3 v_color;
in vec3 v_heat;
out vec4 f_color;
void main() {
    vec3 c;
    if (mode == 0) {
        c = v_color;
    } else if (mode == 1) {
        c = v_albedo;
    } else if (mode == 2) {
        vec3 n = normalize(v_normal);
        c = vec3(0.78) * (0.3 + 0.7 * max(dot(n, normalize(vec3(0.3, 0.4, 1.0))), 0.0));
    } else {
        c = vec3(0.35, 0.9, 0.5);
    }
    c = mix(c, v_heat, overlay);
    f_color = vec4(clamp(c, 0.0, 1.0), opacity);
}
