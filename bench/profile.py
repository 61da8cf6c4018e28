"""Summarise a `py-spy record --format raw` profile: each frame's inclusive share of the samples.

    py-spy record --format raw -o worker.raw --pid PID -d 18 -r 100 --nonblocking
    python -m bench.profile worker.raw [--top 40] [--roots]

A raw profile is one line per distinct stack, `frame;frame;...;frame COUNT`, outermost frame first. A frame's
inclusive share counts every sample whose stack holds it (once per stack, however deep the recursion). With
`--roots`, the share of each outermost frame instead: SQLAlchemy's greenlets and the SDK's native threads show
up as roots of their own, apart from the coroutine that waits on them.
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

LINE_NUMBER = re.compile(r":\d+\)$")


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """The stacks of a raw profile with their sample counts; frames without their line numbers."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append(([LINE_NUMBER.sub(")", frame) for frame in stack.split(";")], int(count)))
    return stacks


def shares(stacks: list[tuple[list[str], int]], roots: bool = False) -> tuple[int, Counter]:
    """The number of samples, and per frame (or per outermost frame, with `roots`) the samples that hold it."""
    total, held = 0, Counter()
    for frames, count in stacks:
        total += count
        for frame in ({frames[0]} if roots else set(frames)):
            held[frame] += count
    return total, held


def render(path: Path, top: int = 40, roots: bool = False) -> list[str]:
    total, held = shares(read_stacks(path), roots)
    lines = [f"{path.name}: {total} samples, {'outermost frames' if roots else 'inclusive share per frame'}"]
    ranked = sorted(held.items(), key=lambda item: (-item[1], item[0]))[:top]  # ties by name: the same every run
    lines += [f"{100 * count / total:5.1f}%  {frame or '(native)'}" for frame, count in ranked]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="a py-spy record --format raw file")
    parser.add_argument("--top", type=int, default=40, help="frames to list (default 40)")
    parser.add_argument("--roots", action="store_true", help="share of each outermost frame instead")
    args = parser.parse_args(argv)
    if not args.profile.is_file():
        print(f"no such profile: {args.profile}", file=sys.stderr)
        return 2
    print("\n".join(render(args.profile, args.top, args.roots)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
