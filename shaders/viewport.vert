#version 330
// Face mesh in the viewport. Clip coordinates over the frame are computed on the inference thread from the
// estimated camera and the crop box, so the mesh lands on the face in the input frame; the orbit view turns
// the centred camera-frame vertices with `orbit_mvp` instead. `view` zooms as the background does.
uniform int orbit;
uniform mat4 orbit_mvp;
uniform vec3 view;
in vec4 in_clip;
in vec3 in_centred;  // camera frame, about the centroid
in vec3 in_normal;   // camera frame
in vec3 in_albedo;   // reflectance
in vec3 in_color;    // albedo x SH irradiance
in vec3 in_heat;     // photometric error as a colour
out vec3 v_normal;
out vec3 v_albedo;
out vec3 v_color;
out vec3 v_heat;
void main() {
    vec4 zoomed = vec4((in_clip.xy - view.xy * in_clip.w) * view.z, in_clip.zw);
    gl_Position = orbit == 1 ? orbit_mvp * vec4(in_centred, 1.0) : zoomed;
    v_normal = in_normal;
    v_albedo = in_albedo;
    v_color = in_color;
    v_heat = in_heat;
}
