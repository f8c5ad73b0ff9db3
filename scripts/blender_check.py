"""Import hmrkit's animation exports in Blender, headless, and check them (docs/outputs.md).

    blender -b --python-exit-code 1 --python scripts/blender_check.py -- \
        --glb out/NAME_p0_anim.glb out/NAME_p1_anim.glb --bvh out/NAME_p0.bvh --frames 40 \
        [--bones 52] [--render docs/anim_blender.png]

Runs inside Blender's own Python (Debian: ``apt-get install blender python3-numpy``).
Per file it prints one line ``CHECK <file> ok|FAIL <what>``, and exits non-zero on a failure:

- a .glb: one armature with ``--bones`` bones, one skinned mesh, an action spanning
  ``--frames`` frames of the video (the importer resamples to the scene's fps), and a mesh
  that moves between the first and the last frame;
- a .bvh (imported at scale 0.01: hmrkit writes centimetres): one armature with
  ``--bones`` bones and ``--frames`` frames.

``--render``: the .glb people together at their middle frame, seen from the video's
camera (the glTF origin), with Cycles on the CPU: a picture to look at.

Two workarounds for Blender 3.4 as Debian 12 ships it, both in this script only: its glTF
importer uses ``numpy.bool`` (gone in numpy 1.24), and its BVH importer opens files in mode
``'rU'`` (gone in Python 3.11).
"""

import argparse
import builtins
import math
import sys

import numpy

if not hasattr(numpy, "bool"):
    numpy.bool = bool
_open = builtins.open
builtins.open = lambda f, mode="r", *a, **k: _open(f, mode.replace("U", ""), *a, **k)

import bpy  # noqa: E402
import mathutils  # noqa: E402


def centroid(obj):
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    me = ev.to_mesh()
    c = sum((obj.matrix_world @ v.co for v in me.vertices), mathutils.Vector()) / max(1, len(me.vertices))
    ev.to_mesh_clear()
    return c


def check_glb(path, bones, frames):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=path)
    sc = bpy.context.scene
    arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    if len(arms) != 1 or len(arms[0].data.bones) != bones:
        return f"armatures {len(arms)}, bones {[len(a.data.bones) for a in arms]} (expected 1 of {bones})"
    if len(meshes) != 1 or not any(m.type == "ARMATURE" for m in meshes[0].modifiers):
        return "no skinned mesh"
    if not bpy.data.actions:
        return "no animation"
    a, b = bpy.data.actions[0].frame_range
    # the importer resamples to the scene's fps; the video's frames span (frames - 1) / fps seconds
    if frames > 1 and b - a <= 0:
        return f"action spans frames {a}..{b}"
    sc.frame_set(int(a))
    c0 = centroid(meshes[0])
    sc.frame_set(int(b))
    c1 = centroid(meshes[0])
    if frames > 1 and (c1 - c0).length < 1e-4:
        return "the mesh does not move"
    return f"ok: {len(arms[0].data.bones)} bones, {len(meshes[0].data.vertices)} vertices, " \
           f"action frames {a:.0f}..{b:.0f} at {sc.render.fps} fps, the mesh moved {(c1 - c0).length:.3f} m"


def check_bvh(path, bones, frames):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=path, global_scale=0.01)
    arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    if len(arms) != 1 or len(arms[0].data.bones) != bones:
        return f"armatures {len(arms)}, bones {[len(a.data.bones) for a in arms]} (expected 1 of {bones})"
    a, b = bpy.data.actions[0].frame_range
    if round(b - a + 1) != frames:
        return f"{b - a + 1:.0f} frames, expected {frames}"
    return f"ok: {bones} bones, {frames} frames"


def render(glbs, out):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for g in glbs:
        bpy.ops.import_scene.gltf(filepath=g)
    sc = bpy.context.scene
    a, b = bpy.data.actions[0].frame_range
    sc.frame_set(int((a + b) / 2))
    cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    sc.collection.objects.link(cam)
    sc.camera = cam
    cam.location = (0.0, 0.0, 0.0)  # glTF's origin, looking along its -z: Blender's +y
    cam.rotation_euler = (math.radians(90), 0, 0)
    cam.data.lens = 30
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sc.collection.objects.link(sun)
    sun.rotation_euler = (math.radians(40), 0, math.radians(30))
    sc.world = bpy.data.worlds.new("world")
    sc.world.color = (0.9, 0.9, 0.9)
    sc.render.engine = "CYCLES"
    sc.cycles.device, sc.cycles.samples, sc.cycles.use_denoising = "CPU", 16, False
    sc.render.resolution_x, sc.render.resolution_y = 360, 640
    sc.render.filepath = out
    bpy.ops.render.render(write_still=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glb", nargs="*", default=[])
    ap.add_argument("--bvh", nargs="*", default=[])
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--bones", type=int, default=52)
    ap.add_argument("--render", default=None)
    args = ap.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])
    failed = 0
    for kind, files, fn in (("glb", args.glb, check_glb), ("bvh", args.bvh, check_bvh)):
        for f in files:
            r = fn(f, args.bones, args.frames)
            ok = r.startswith("ok")
            failed += not ok
            print(f"CHECK {f} {r if ok else 'FAIL ' + r}", flush=True)
    if args.render and args.glb:
        render(args.glb, args.render)
        print(f"CHECK rendered {args.render}", flush=True)
    sys.exit(1 if failed else 0)


main()
