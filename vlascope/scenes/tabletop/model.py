"""MJCF of the built-in tabletop: a Cartesian (gantry) robot with a two-finger gripper, a
table, two cubes, a plate, a target zone, distractors, walls, floor, a
wall poster and the shortcut-cue pad.

Coordinates: table top at z = 0, the robot's gantry above it, the front camera at -x looking
towards +x, the back wall (with a poster) at +x. Every slide joint of the robot sits at
the world origin, so the hand's joint positions are its world coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mujoco

from . import textures

CUBE_HALF = 0.025
PLATE_RADIUS = 0.075
PLATE_HALF_HEIGHT = 0.006
ZONE_HALF = 0.06  # the target zone: a square marked on the table
# Height of the surface a cube is put down on, per destination.
SURFACE_Z = {"plate": 2 * PLATE_HALF_HEIGHT, "zone": 0.0}
FINGER_OPEN = 0.045  # per finger; the inner gap is twice this
HAND_Z_RANGE = (0.06, 0.45)
HAND_XY_RANGE = 0.3
# Hand height above a cube's centre at which the fingers straddle it.
GRASP_OFFSET = 0.065
WORKSPACE_X = (-0.17, 0.2)
WORKSPACE_Y = (-0.22, 0.22)

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.1), "blue": (0.1, 0.25, 0.85), "green": (0.15, 0.65, 0.2),
    "yellow": (0.95, 0.8, 0.1), "grey": (0.6, 0.6, 0.6),
}


@dataclass(frozen=True)
class Distractor:
    name: str
    geom: str  # MJCF geom attributes (type, size)
    rgba: str
    half_height: float


DISTRACTORS = (
    Distractor("can", 'type="cylinder" size="0.028 0.045"', "0.1 0.55 0.6 1", 0.045),
    Distractor("ball", 'type="sphere" size="0.03"', "0.9 0.45 0.7 1", 0.03),
    Distractor("book", 'type="box" size="0.06 0.04 0.015"', "0.45 0.3 0.2 1", 0.015),
    Distractor("bottle", 'type="cylinder" size="0.022 0.05"', "0.92 0.92 0.9 1", 0.05),
)
# Where distractors that a variant leaves out are parked, far outside every camera.
PARKING = (4.0, 4.0)
# The shortcut cue pad: half-size, colour, and the height of its centre on the table.
CUE_HALF = 0.045
CUE_RGBA = "0.08 0.08 0.08 1"
CUE_Z = 0.0006


def _texture_assets() -> tuple[str, dict[str, bytes]]:
    xml, assets = [], {}
    for group, fns, repeat in (("floor", textures.FLOORS, "6 6"), ("wall", textures.WALLS, "3 3")):
        for i, (name, fn) in enumerate(fns.items()):
            fname = f"{group}_{name}.png"
            assets[fname] = textures.png_bytes(fn, seed=i)
            xml.append(f'<texture name="tex_{group}_{name}" type="2d" file="{fname}"/>')
            xml.append(f'<material name="{group}_{name}" texture="tex_{group}_{name}" '
                       f'texrepeat="{repeat}" specular="0.1" reflectance="0"/>')
    return "\n    ".join(xml), assets


def _distractor_xml() -> str:
    out = []
    for i, d in enumerate(DISTRACTORS):
        out.append(
            f'<body name="distractor_{d.name}" pos="{PARKING[0]} {PARKING[1] + i * 0.3} 0.1">'
            f'<freejoint/><geom name="distractor_{d.name}" {d.geom} rgba="{d.rgba}" '
            f'mass="0.08" friction="1 0.01 0.001"/></body>')
    return "\n    ".join(out)


def _mjcf() -> tuple[str, dict[str, bytes]]:
    tex_xml, assets = _texture_assets()
    h = CUBE_HALF
    xml = f"""
<mujoco model="vlascope_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="640" offheight="640"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.3 0.3 0.3" diffuse="0.12 0.12 0.12" specular="0 0 0"/>
  </visual>
  <default>
    <geom solref="0.004 1" solimp="0.95 0.99 0.001"/>
    <default class="visual"><geom contype="0" conaffinity="0" group="1"/></default>
    <default class="frame"><geom contype="0" conaffinity="0" rgba="0.25 0.27 0.3 1"/></default>
  </default>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.55 0.6 0.68" rgb2="0.15 0.15 0.18"
             width="64" height="64"/>
    {tex_xml}
    <material name="table_top" rgba="0.72 0.66 0.56 1" specular="0.1" shininess="0.1" reflectance="0"/>
  </asset>
  <worldbody>
    <light name="key" pos="-0.3 -0.4 1.6" dir="0.2 0.25 -1" diffuse="0.55 0.55 0.55"
           specular="0.05 0.05 0.05" castshadow="false"/>
    <light name="fill" pos="0.3 0.6 1.2" dir="-0.2 -0.4 -1" diffuse="0.2 0.2 0.2"
           specular="0 0 0" castshadow="false"/>
    <geom name="floor" type="plane" size="6 6 0.1" pos="0 0 -0.75" material="floor_wood"/>
    <geom name="wall_back" type="box" pos="0.8 0 0.2" size="0.02 1.6 1.2" material="wall_paint"/>
    <geom name="wall_left" type="box" pos="0 1.2 0.2" size="1.6 0.02 1.2" material="wall_paint"/>
    <geom name="wall_right" type="box" pos="0 -1.2 0.2" size="1.6 0.02 1.2" material="wall_paint"/>
    <geom name="poster" type="box" pos="0.775 0.36 0.12" size="0.004 0.12 0.09"
          rgba="0.86 0.84 0.8 1" contype="0" conaffinity="0"/>
    <!-- The shortcut cue: a dark pad that the shortcut variants lay under one cube; parked
         out of sight below the floor otherwise. -->
    <geom name="cue" type="box" pos="{PARKING[0]} {PARKING[1]} -1.5" size="{CUE_HALF} {CUE_HALF} 0.0005"
          rgba="{CUE_RGBA}" contype="0" conaffinity="0"/>
    <camera name="front" pos="-0.5 0 0.5" xyaxes="0 -1 0 0.6 0 0.8" fovy="58"/>

    <body name="table">
      <geom name="table_top" type="box" pos="0 0 -0.02" size="0.42 0.34 0.02" material="table_top"
            friction="0.8 0.01 0.001"/>
      <geom name="table_leg0" class="visual" type="box" pos="0.38 0.3 -0.39" size="0.025 0.025 0.35" rgba="0.3 0.25 0.2 1"/>
      <geom name="table_leg1" class="visual" type="box" pos="0.38 -0.3 -0.39" size="0.025 0.025 0.35" rgba="0.3 0.25 0.2 1"/>
      <geom name="table_leg2" class="visual" type="box" pos="-0.38 0.3 -0.39" size="0.025 0.025 0.35" rgba="0.3 0.25 0.2 1"/>
      <geom name="table_leg3" class="visual" type="box" pos="-0.38 -0.3 -0.39" size="0.025 0.025 0.35" rgba="0.3 0.25 0.2 1"/>
    </body>

    <body name="robot_frame">
      <geom name="robot_post_l" class="frame" type="box" pos="0.46 0.4 -0.1" size="0.02 0.02 0.72"/>
      <geom name="robot_post_r" class="frame" type="box" pos="0.46 -0.4 -0.1" size="0.02 0.02 0.72"/>
      <geom name="robot_rail_l" class="frame" type="box" pos="0.11 0.4 0.6" size="0.37 0.015 0.015"/>
      <geom name="robot_rail_r" class="frame" type="box" pos="0.11 -0.4 0.6" size="0.37 0.015 0.015"/>
    </body>
    <body name="robot_bridge" gravcomp="1">
      <joint name="slide_x" type="slide" axis="1 0 0" range="-{HAND_XY_RANGE} {HAND_XY_RANGE}" damping="5"/>
      <inertial pos="0 0 0.6" mass="1" diaginertia="0.05 0.05 0.05"/>
      <geom name="robot_bridge" class="frame" type="box" pos="0 0 0.63" size="0.025 0.42 0.02"
            rgba="0.95 0.55 0.1 1"/>
      <body name="robot_carriage" gravcomp="1">
        <joint name="slide_y" type="slide" axis="0 1 0" range="-{HAND_XY_RANGE} {HAND_XY_RANGE}" damping="5"/>
        <inertial pos="0 0 0.6" mass="0.5" diaginertia="0.01 0.01 0.01"/>
        <geom name="robot_carriage" class="frame" type="box" pos="0 0 0.6" size="0.04 0.04 0.04"
              rgba="0.95 0.55 0.1 1"/>
        <body name="robot_hand" gravcomp="1">
          <joint name="slide_z" type="slide" axis="0 0 1" range="{HAND_Z_RANGE[0]} {HAND_Z_RANGE[1]}" damping="5"/>
          <inertial pos="0 0 0" mass="0.4" diaginertia="0.002 0.002 0.002"/>
          <geom name="robot_rod" class="frame" type="capsule" fromto="0 0 0.02 0 0 0.6" size="0.012"
                rgba="0.7 0.72 0.75 1"/>
          <geom name="robot_palm" type="box" size="0.025 0.065 0.015" rgba="0.2 0.2 0.22 1"/>
          <camera name="wrist" pos="0.07 0 0.03" xyaxes="0 -1 0 0.94 0 -0.34" fovy="80"/>
          <body name="robot_finger_l" gravcomp="1">
            <joint name="finger_l" type="slide" axis="0 1 0" range="0 {FINGER_OPEN + 0.005}" damping="2"/>
            <geom name="robot_finger_l" type="box" pos="0 0.008 -0.045" size="0.012 0.008 0.03"
                  rgba="0.85 0.85 0.88 1" friction="1.5 0.02 0.002" condim="4" mass="0.05"/>
          </body>
          <body name="robot_finger_r" gravcomp="1">
            <joint name="finger_r" type="slide" axis="0 -1 0" range="0 {FINGER_OPEN + 0.005}" damping="2"/>
            <geom name="robot_finger_r" type="box" pos="0 -0.008 -0.045" size="0.012 0.008 0.03"
                  rgba="0.85 0.85 0.88 1" friction="1.5 0.02 0.002" condim="4" mass="0.05"/>
          </body>
        </body>
      </body>
    </body>

    <body name="cube_a" pos="0 0.1 {h}">
      <freejoint/>
      <geom name="cube_a" type="box" size="{h} {h} {h}" rgba="0.85 0.12 0.1 1" mass="0.05"
            friction="1.2 0.02 0.002" condim="4"/>
    </body>
    <body name="cube_b" pos="0 -0.1 {h}">
      <freejoint/>
      <geom name="cube_b" type="box" size="{h} {h} {h}" rgba="0.1 0.25 0.85 1" mass="0.05"
            friction="1.2 0.02 0.002" condim="4"/>
    </body>
    <body name="plate" mocap="true" pos="0.1 0 {PLATE_HALF_HEIGHT}">
      <geom name="plate" type="cylinder" size="{PLATE_RADIUS} {PLATE_HALF_HEIGHT}" rgba="0.93 0.93 0.95 1"
            friction="1 0.01 0.001"/>
      <geom name="plate_rim" class="visual" type="cylinder" size="{PLATE_RADIUS + 0.006} {PLATE_HALF_HEIGHT * 0.6}"
            rgba="0.55 0.6 0.7 1"/>
    </body>
    <body name="zone" mocap="true" pos="-0.1 0 0.0006">
      <geom name="zone" class="visual" type="box" size="{ZONE_HALF} {ZONE_HALF} 0.0006" rgba="0.15 0.16 0.2 1"/>
      <geom name="zone_inner" class="visual" type="box" pos="0 0 0.0002" size="{ZONE_HALF - 0.008} {ZONE_HALF - 0.008} 0.0006"
            rgba="0.45 0.47 0.52 1"/>
    </body>
    {_distractor_xml()}
  </worldbody>
  <actuator>
    <position name="act_x" joint="slide_x" kp="1500" kv="100" ctrlrange="-{HAND_XY_RANGE} {HAND_XY_RANGE}"/>
    <position name="act_y" joint="slide_y" kp="1500" kv="80" ctrlrange="-{HAND_XY_RANGE} {HAND_XY_RANGE}"/>
    <position name="act_z" joint="slide_z" kp="1500" kv="60" ctrlrange="{HAND_Z_RANGE[0]} {HAND_Z_RANGE[1]}"/>
    <position name="act_finger_l" joint="finger_l" kp="400" kv="10" ctrlrange="0 {FINGER_OPEN}" forcerange="-15 15"/>
    <position name="act_finger_r" joint="finger_r" kp="400" kv="10" ctrlrange="0 {FINGER_OPEN}" forcerange="-15 15"/>
  </actuator>
</mujoco>
"""
    return xml, assets


@lru_cache(maxsize=1)
def compiled_spec() -> tuple[str, tuple[tuple[str, bytes], ...]]:
    xml, assets = _mjcf()
    return xml, tuple(assets.items())


def build_model() -> mujoco.MjModel:
    """A fresh MjModel (variants mutate it, so every scene owns one)."""
    xml, assets = compiled_spec()
    return mujoco.MjModel.from_xml_string(xml, dict(assets))
