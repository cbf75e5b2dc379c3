"""The reports of ``cityops layers import`` and ``layers check`` as lines of text,
Vietnamese first, English second (as the rest of the CLI)."""

from __future__ import annotations

from layers.check import KINDS, CheckReport, Finding
from layers.importer import ImportReport
from layers.levels import Hierarchy

LISTED = 20  # findings listed per kind; the rest are counted

# kind → (vi, en): what the officer sees as the heading of each group of findings.
TITLES: dict[str, tuple[str, str]] = {
    "not_in_hierarchy": ("Mã không có trong danh mục ĐVHC ở cấp này", "codes not in the hierarchy"),
    "duplicate_code": ("Mã trùng lặp", "duplicate codes"),
    "bad_parent": ("Mã cấp trên không tồn tại", "parent code does not exist"),
    "not_polygon": ("Hình không phải vùng (polygon)", "geometry is not a polygon"),
    "unrepairable": ("Hình lỗi không sửa được", "invalid geometry, not repairable"),
    "missing": ("Thiếu ranh giới (có trong danh mục, không có hình)", "missing units"),
    "parent_mismatch": ("Mã cấp trên khác danh mục", "parent code differs from the hierarchy"),
    "repaired": ("Hình lỗi, đã sửa được (make_valid)", "invalid geometries, repairable"),
    "sliver": ("Mảnh vụn (nhỏ hơn ngưỡng)", "slivers (parts below the area threshold)"),
    "gap": ("Khe hở giữa các đơn vị", "gaps between neighbours"),
    "overlap": ("Chồng lấn giữa các đơn vị", "overlaps between neighbours"),
    "unmatched_edges": ("Ranh giới chung không khớp đỉnh", "shared borders that do not match"),
    "outside_parent": ("Nằm ngoài đơn vị cấp trên", "outside their parent"),
    "parent_not_in_layer": ("Cấp trên không có trong lớp cấp trên", "parent not in parent layer"),
    "outside_scope": ("Ngoài phạm vi (layers.scope), bảng điều khiển bỏ qua", "outside the scope"),
}
SEVERITY = {"error": "LỖI / ERROR", "warning": "CẢNH BÁO / WARNING", "info": "GHI CHÚ / NOTE"}


def format_area(area_m2: float) -> str:
    """1234.5 → "1.235 m²"; 19512 → "0,0195 km²" (Vietnamese number style)."""
    if area_m2 >= 10_000:
        shown = f"{area_m2 / 1e6:,.4f}".replace(",", "\0").replace(".", ",").replace("\0", ".")
        return f"{shown} km²"
    return f"{area_m2:,.0f}".replace(",", ".") + " m²"


def _describe(finding: Finding, hierarchy: Hierarchy) -> str:
    parts = []
    for code in finding.codes:
        unit = hierarchy.get(code)
        parts.append(f"{code} {unit.full_name}" if unit else code)
    text = " / ".join(parts)
    if finding.area_m2 is not None:
        text += f"  {format_area(finding.area_m2)}"
    if finding.where is not None:
        lon, lat = finding.where
        text += f"  tại / at {lon:.5f} E {lat:.5f} N"
    if finding.detail and finding.kind in ("bad_parent", "parent_mismatch", "not_polygon"):
        text += f"  ({finding.detail})"
    if finding.kind == "duplicate_code":
        text += f"  ×{finding.detail}"
    if finding.kind == "outside_parent":
        text += f"  (cấp trên / parent {finding.detail})"
    return text.strip()


def check_lines(report: CheckReport, hierarchy: Hierarchy) -> list[str]:
    scope = report.scope or "cả nước / whole country"
    lines = [
        f"Kiểm tra lớp ranh giới / boundary layer check: {report.path}",
        f"  cấp / level {report.level}, {report.features} đối tượng / features, "
        f"phạm vi / scope {scope}, ngưỡng diện tích / area threshold "
        f"{format_area(report.min_area_m2)}",
    ]
    if report.parent_layer is not None:
        lines.append(f"  lớp cấp trên / parent layer: {report.parent_layer}")
    for kind, severity in KINDS.items():
        found = report.of(kind)
        if kind in ("repaired", "unmatched_edges", "outside_scope"):
            codes = [code for finding in found for code in finding.codes]
            if codes:
                vi, en = TITLES[kind]
                shown = ", ".join(codes[:LISTED]) + (" …" if len(codes) > LISTED else "")
                lines.append(f"{SEVERITY[severity]}  {vi} / {en}: {len(codes)}")
                lines.append(f"    {shown}")
            continue
        if not found:
            continue
        vi, en = TITLES[kind]
        lines.append(f"{SEVERITY[severity]}  {vi} / {en}: {len(found)}")
        lines += [f"    {_describe(finding, hierarchy)}" for finding in found[:LISTED]]
        if len(found) > LISTED:
            lines.append(f"    … và {len(found) - LISTED} mục nữa / and {len(found) - LISTED} more")
    lines.append(
        f"Tổng / summary: {report.errors} lỗi / errors, {report.warnings} cảnh báo / warnings."
    )
    if report.errors:
        lines.append(
            "KHÔNG DÙNG ĐƯỢC: sửa các lỗi rồi kiểm tra lại (mã thoát 1) / "
            "NOT USABLE: fix the errors and check again (exit code 1)"
        )
    elif report.warnings:
        lines.append("DÙNG ĐƯỢC, có cảnh báo (mã thoát 0) / USABLE with warnings (exit code 0)")
    else:
        lines.append("DÙNG ĐƯỢC (mã thoát 0) / USABLE (exit code 0)")
    return lines


def import_lines(report: ImportReport, level: str) -> list[str]:
    fields = report.fields
    lines = [
        f"Đã nhập / imported: {report.source}"
        + (f" (lớp / layer {report.layer})" if report.layer else "")
        + f" → {report.out}",
        f"  {report.features} đơn vị / units; hệ tọa độ nguồn / source CRS {report.source_crs}"
        " → EPSG:4326",
        f"  trường / fields: mã / code={fields.code}, tên / name={fields.name or '-'}, "
        f"cấp trên / parent={fields.parent or '-'}",
    ]
    if report.padded_codes:
        lines.append(f"  {report.padded_codes} mã được thêm số 0 ở đầu / codes zero-padded")
    if report.repaired:
        lines.append(
            f"  CẢNH BÁO / WARNING  {len(report.repaired)} hình lỗi đã sửa (make_valid) / "
            f"invalid geometries repaired: {', '.join(report.repaired[:LISTED])}"
        )
    if report.skipped:
        shown = ", ".join(str(position) for position in report.skipped[:LISTED])
        lines.append(
            f"  CẢNH BÁO / WARNING  bỏ qua {len(report.skipped)} đối tượng không có vùng / "
            f"skipped features without a polygon: {shown}"
        )
    lines.append(f"Tiếp theo / next: cityops layers check {report.out} --level {level}")
    return lines
