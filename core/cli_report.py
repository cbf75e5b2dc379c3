"""`cityops report weekly`: the weekly KPI review of one unit as PDF and XLSX (issue #7).

Exit 0 written (both paths printed), 1 the store or database could not be read, 2 a bad
value (the week, the unit code or the language is named in the message).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.cli import ConfigOption, build_engine, build_store, settings_or_exit
from core.errors import CityOpsError, ConfigError

report_app: typer.Typer = typer.Typer(
    help="Báo cáo / reports: the weekly KPI review as PDF and XLSX (issue #7).",
    no_args_is_help=True,
)


def _refuse(message: str) -> typer.Exit:
    typer.echo(f"lỗi / error: {message}", err=True)
    return typer.Exit(code=2)


@report_app.command("weekly")
def report_weekly(
    unit: Annotated[str, typer.Option(help="The unit's code, e.g. 48 (Đà Nẵng).")],
    week: Annotated[
        str | None, typer.Option(help="ISO week such as 2026-W47; default: last week.")
    ] = None,
    lang: Annotated[str, typer.Option(help="vi or en.")] = "vi",
    out: Annotated[Path, typer.Option(help="Folder for the two files.")] = Path("."),
    config: ConfigOption = Path("config.yaml"),
) -> None:
    """Write bao-cao-tuan-<unit>-<week>.pdf and .xlsx into --out and print their paths."""
    from zoneinfo import ZoneInfo

    from alerts.repository import AlertRepository
    from core.clock import SystemClock
    from layers.levels import Hierarchy
    from reports.mail import file_stem
    from reports.pdf import write_pdf
    from reports.weekly import UnknownUnit, build_weekly
    from reports.weeks import BadWeek, last_complete_week, parse_week
    from reports.xlsx import write_xlsx

    if lang not in ("vi", "en"):
        raise _refuse(f"--lang must be vi or en: {lang!r}")
    try:
        asked = None if week is None else parse_week(week)
    except BadWeek as exc:
        raise _refuse(f"--week: {exc}") from None
    settings = settings_or_exit(config)
    now = SystemClock().now()
    iso_week = asked or last_complete_week(now, ZoneInfo(settings.site.timezone))
    try:
        hierarchy = Hierarchy.from_csv(
            settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
        )
    except ConfigError as exc:
        raise _refuse(str(exc)) from None
    code = unit.strip()
    if hierarchy.get(code) is None:
        raise _refuse(f"--unit: no administrative unit with code {unit!r}")
    store = build_store(settings)
    try:
        engine = build_engine(settings)
        # A state database where the alert engine never ran has no alert tables yet:
        # creating them (idempotent, core.migrate) makes that "no alerts", not an error.
        AlertRepository(engine).create_schema()
        report = build_weekly(settings, store, engine, hierarchy, code, iso_week, now=now)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / file_stem(code, iso_week, lang)
        pdf_path, xlsx_path = stem.with_suffix(".pdf"), stem.with_suffix(".xlsx")
        pdf_path.write_bytes(write_pdf(report, lang))
        write_xlsx(report, lang, xlsx_path)
    except UnknownUnit as exc:
        raise _refuse(f"--unit: {exc}") from None
    except (CityOpsError, OSError) as exc:
        typer.echo(f"lỗi / error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    typer.echo(str(pdf_path))
    typer.echo(str(xlsx_path))
