"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): top functions by self and
inclusive share of samples.

    python -m bench.profile_summary bench/results/<stamp>/profile-daemon-fanout_1000x10.txt
"""

import argparse
import re
from collections import Counter

LOCATION = re.compile(r" \((?:.*/)?(?:site-packages/)?([^()]*?):\d+\)$")


def short(frame):
    """``func (path/to/module.py:123)`` -> ``func (module.py)``, site-packages stripped."""
    match = LOCATION.search(frame)
    if not match:
        return frame
    name = frame[: match.start()]
    where = match.group(1)
    where = where.split("site-packages/")[-1]
    return f"{name} ({where})"


def summarise(path, top=25):
    self_counts, inclusive = Counter(), Counter()
    total = 0
    with open(path) as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            count = int(count)
            frames = [short(f) for f in stack.split(";")]
            total += count
            self_counts[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    return total, self_counts.most_common(top), inclusive.most_common(top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    total, by_self, by_inclusive = summarise(args.profile, args.top)
    print(f"{total} samples")
    print("\nself %  function")
    for frame, count in by_self:
        print(f"{100 * count / total:6.1f}  {frame}")
    print("\nincl %  function")
    for frame, count in by_inclusive:
        print(f"{100 * count / total:6.1f}  {frame}")


if __name__ == "__main__":
    main()
