"""Whether the installed distribution of the plugin at PATH registers every entry point its
pyproject.toml declares: an editable install made before a new entry point was added keeps
the old list, and discovery would not find the new plugin. Exit 0: current; 1: installed
but stale; 2: not installed. Used by scripts/setup.sh."""

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


def main(path: str) -> int:
    with open(Path(path) / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    declared = {(group, name, value) for group, points in project.get("entry-points", {}).items()
                for name, value in points.items()}
    try:
        installed = distribution(project["name"])
    except PackageNotFoundError:
        return 2
    registered = {(e.group, e.name, e.value) for e in installed.entry_points}
    return 0 if declared <= registered else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
