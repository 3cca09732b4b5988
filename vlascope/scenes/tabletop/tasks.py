"""Tabletop tasks as data: which cube, where to, the instruction template, the step limit.
Tasks come in pairs that share the scene and differ only in the named object, so a policy
has to read the instruction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TabletopTask:
    name: str
    kind: str  # "pick", "place" or "stack"
    obj: str  # the cube to move: "cube_a" or "cube_b"
    target: str | None  # "plate", "zone", the other cube, or None for pick
    template: str  # filled with the cube colours of the variant
    max_steps: int

    def instruction(self, colors: dict[str, str]) -> str:
        return self.template.format(**colors)

    @property
    def other(self) -> str:
        return "cube_b" if self.obj == "cube_a" else "cube_a"

    @property
    def named_objects(self) -> tuple[str, ...]:
        """Objects the instruction names: these and the table are the support region."""
        return (self.obj,) if self.target is None else (self.obj, self.target)


# Names use the default palette (cube_a red, cube_b blue); under the "recolor" variant the
# instruction names the new colours while the task keeps its name.
TASKS: tuple[TabletopTask, ...] = (
    TabletopTask("pick_red", "pick", "cube_a", None, "pick up the {cube_a} cube", 60),
    TabletopTask("pick_blue", "pick", "cube_b", None, "pick up the {cube_b} cube", 60),
    TabletopTask("place_red_on_plate", "place", "cube_a", "plate",
                 "put the {cube_a} cube on the plate", 110),
    TabletopTask("place_blue_on_plate", "place", "cube_b", "plate",
                 "put the {cube_b} cube on the plate", 110),
    TabletopTask("place_red_in_zone", "place", "cube_a", "zone",
                 "put the {cube_a} cube in the target zone", 110),
    TabletopTask("place_blue_in_zone", "place", "cube_b", "zone",
                 "put the {cube_b} cube in the target zone", 110),
    TabletopTask("stack_red_on_blue", "stack", "cube_a", "cube_b",
                 "stack the {cube_a} cube on the {cube_b} cube", 110),
    TabletopTask("stack_blue_on_red", "stack", "cube_b", "cube_a",
                 "stack the {cube_b} cube on the {cube_a} cube", 110),
)
