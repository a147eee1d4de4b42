"""Text and JSON forms of the integrity reports (``adapters verify``, ``adapters gc``)."""

from datetime import UTC, datetime
from typing import Any

from loraledger.registry import GarbageReport, VerifyReport
from loraledger.registry.artifacts import StoredObject


def size(value: int) -> str:
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f}{unit}"
    return f"{seconds:.0f}s"


def verify_lines(report: VerifyReport) -> list[str]:
    lines = [problem.line() for problem in report.problems]
    checked = (
        f"checked {report.artifacts} artifact(s), {report.blobs} distinct file(s) "
        f"({report.datasets} dataset cop{'y' if report.datasets == 1 else 'ies'}), "
        f"{size(report.bytes)} in {report.seconds:.2f} s"
    )
    leftovers = []
    if report.unreferenced:
        stored = size(sum(item.size for item in report.unreferenced))
        leftovers.append(
            f"{len(report.unreferenced)} unreferenced object(s), {stored}, left by interrupted or refused "
            "runs: `adapters gc` lists them"
        )
    if report.ok:
        return [f"ok: {checked}", *leftovers]
    return [*lines, f"{checked}: {report.corrupt} corrupt, {report.missing} missing", *leftovers]


def verify_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "artifacts": report.artifacts,
        "blobs": report.blobs,
        "datasets": report.datasets,
        "bytes": report.bytes,
        "seconds": round(report.seconds, 4),
        "problems": [
            {"kind": p.kind, "object": p.object, "digest": p.digest, "affects": p.affects}
            for p in report.problems
        ],
        "unreferenced": None
        if report.unreferenced is None
        else [{"kind": item.kind, "name": item.name, "size": item.size} for item in report.unreferenced],
    }


def _age_of(item: StoredObject, now: datetime) -> float | None:
    return (now - item.modified).total_seconds() if item.modified else None


def garbage_lines(report: GarbageReport, *, deleted: bool) -> list[str]:
    now = datetime.now(UTC)
    lines = []
    for item in report.collectable:
        item_age = _age_of(item, now)
        lines.append(
            f"{'deleted' if deleted else 'unreferenced'} {item.kind} {item.name} "
            f"{size(item.size)}, {age(item_age) if item_age is not None else '?'} old"
        )
    count = len(report.collectable)
    if not count:
        lines.append("nothing to collect")
    elif deleted:
        lines.append(f"deleted {count} unreferenced object(s), {size(report.bytes)}")
    else:
        lines.append(
            f"{count} unreferenced object(s), {size(report.bytes)}: run `adapters gc --yes` to delete them"
        )
    if report.spared:
        lines.append(
            f"kept {len(report.spared)} unreferenced object(s) younger than {age(report.min_age_seconds)}: "
            "they may belong to a run that has not registered yet (--min-age 0 includes them)"
        )
    return lines


def _object_json(item: StoredObject) -> dict[str, Any]:
    return {
        "kind": item.kind,
        "name": item.name,
        "size": item.size,
        "modified": item.modified.isoformat() if item.modified else None,
    }


def garbage_json(report: GarbageReport, *, deleted: bool) -> dict[str, Any]:
    return {
        "deleted": deleted,
        "min_age_seconds": report.min_age_seconds,
        "bytes": report.bytes,
        "collectable": [_object_json(item) for item in report.collectable],
        "spared": [_object_json(item) for item in report.spared],
        "damaged_manifests": report.damaged_manifests,
    }
