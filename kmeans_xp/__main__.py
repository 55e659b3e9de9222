"""``python -m kmeans_xp``: the ``kmeans-xp`` command (see ``python -m kmeans_xp --help``)."""

if __name__ == "__main__":
    from kmeans_xp.cli import main

    raise SystemExit(main())
