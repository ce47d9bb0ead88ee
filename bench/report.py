"""The table backup_bench.py prints, and the ratios against the targets."""

from __future__ import annotations

from typing import Any

MB = 1e6


def _t(run: Any) -> str:
    return f"{run.seconds:7.1f} s" if run else "      -"


def _cpu_pair(r: Any) -> str:
    return f"{r.incr_map.cpu:.1f} / {r.incr.cpu:.1f}" if r.incr_map else f"{r.incr.cpu:.1f}"


def _mb(value: int) -> str:
    return f"{value / MB:8.1f} MB"


def print_table(
    results: list[Any], summary: dict[str, int], limits: dict[str, float], pools: dict[str, float]
) -> None:
    size = summary["size"]
    names = [r.name for r in results]
    print()
    print(
        f"image {size / 2**30:.2f} GiB; 1 % mutation: {summary['bytes_written'] / MB:.1f} MB "
        f"written, {summary['changed_bytes'] / MB:.1f} MB changed in "
        f"{summary['extents']} extents (4 KiB granularity)"
    )
    print()
    print(f"| {'':34} | " + " | ".join(f"{n:>12}" for n in names) + " |")
    print(f"|{'-' * 36}|" + "|".join("-" * 14 for _ in names) + "|")
    rows = [
        ("full backup", lambda r: _t(r.full)),
        ("full backup MB/s", lambda r: f"{size / r.full.seconds / MB:10.0f}"),
        ("full backup, CPU seconds", lambda r: f"{r.full.cpu:7.1f} s"),
        ("1 % incremental, change map", lambda r: _t(r.incr_map)),
        ("1 % incremental, no map", lambda r: _t(r.incr)),
        ("1 % incremental, CPU s (map/no map)", lambda r: _cpu_pair(r)),
        ("restore (new file)", lambda r: _t(r.restore)),
        ("restore MB/s", lambda r: f"{size / r.restore.seconds / MB:10.0f}"),
        ("restore, CPU seconds", lambda r: f"{r.restore.cpu:7.1f} s"),
        ("restore matches sha256", lambda r: f"{'yes' if r.restore_ok else 'NO':>10}"),
        ("store size after full", lambda r: _mb(r.store_full)),
        ("store growth, incr. with map", lambda r: _mb(r.growth_map) if r.incr_map else "-"),
        ("store growth, incr. no map", lambda r: _mb(r.growth)),
        ("peak RSS (max of the runs)", lambda r: f"{r.rss:8.0f} MB"),
    ]
    for label, cell in rows:
        print(f"| {label:34} | " + " | ".join(f"{cell(r):>12}" for r in results) + " |")
    print()
    _print_targets(results, summary)
    print()
    print("machine: " + "; ".join(f"{k} {v:.0f}" for k, v in limits.items()))
    print(
        "block pipeline (hash+zstd+AES-GCM, 512 MiB sample): "
        + "; ".join(f"{k} {v:.0f} MB/s" for k, v in pools.items())
    )
    for r in results:
        for note in r.notes:
            print(note)


def _print_targets(results: list[Any], summary: dict[str, int]) -> None:
    ours = results[0]
    restic = next((r for r in results if r.name == "restic"), None)
    changed = summary["changed_bytes"]
    checks = []
    if restic is not None:
        pairs = [
            ("full backup >= 2x restic", restic.full, ours.full, 2.0),
            ("incr. with map >= 20x restic incr.", restic.incr, ours.incr_map, 20.0),
            ("incr. without map >= 1.5x restic", restic.incr, ours.incr, 1.5),
            ("restore >= 2x restic", restic.restore, ours.restore, 2.0),
        ]
        checks += [
            (
                label,
                theirs.seconds / mine.seconds,
                target,
                f"x (CPU {theirs.cpu / max(mine.cpu, 1e-3):.1f}x)",
            )
            for label, theirs, mine, target in pairs
        ]
        checks.append(("store size <= restic", restic.store_full / ours.store_full, 1.0, "x"))
    checks += [
        (
            "growth (map) <= 5x bytes changed",
            5.0 / max(ours.growth_map / changed, 1e-9),
            1.0,
            f" (growth {ours.growth_map / changed:.2f}x changed)",
        ),
        ("peak RSS < 500 MB", 500 / ours.rss, 1.0, f" ({ours.rss:.0f} MB)"),
    ]
    print("targets:")
    for label, value, target, unit in checks:
        status = "met" if value >= target else "MISSED"
        shown = f"{value:.2f}{unit}" if unit.startswith("x") else unit.strip()
        print(f"  {label:36} {shown:>30}  {status}")


def print_block_sizes(rows: list[tuple[int, Any]], summary: dict[str, int]) -> None:
    changed = summary["changed_bytes"]
    print()
    print(
        "| block size | full backup (CPU) | incr. with map (CPU) | incr. no map (CPU) "
        "| restore (CPU) | store after full | growth (map) | growth / changed | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for bs, r in rows:
        print(
            f"| {bs // 1024} KiB | {_wc(r.full)} | {_wc(r.incr_map)} | {_wc(r.incr)} | "
            f"{_wc(r.restore)} | {r.store_full / MB:.0f} MB | {r.growth_map / MB:.1f} MB | "
            f"{r.growth_map / changed:.2f}x | {r.rss:.0f} MB |"
        )


def _wc(run: Any) -> str:
    return f"{run.seconds:.1f} s ({run.cpu:.1f} s)"
