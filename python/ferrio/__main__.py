"""``python -m ferrio <command>``.

Commands:
  bench       run the loop benchmarks (see ``python -m ferrio bench --help``)
  bench net   run the network echo benchmarks (``python -m ferrio bench net --help``)
  bench threads  run the thread-layer benchmarks (``python -m ferrio bench threads --help``)
"""

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench" and rest[:1] == ["net"]:
        from ._netbench import main as net_main

        return net_main(rest[1:])
    if cmd == "bench" and rest[:1] == ["threads"]:
        from ._threadbench import main as threads_main

        return threads_main(rest[1:])
    if cmd == "bench":
        from ._bench import main as bench_main

        return bench_main(rest)
    print(f"unknown command {cmd!r}\n\n{__doc__.strip()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
