"""The PDF export, read back with poppler's pdftotext/pdfinfo/pdffonts (Debian
poppler-utils): Vietnamese text with its diacritics, the week and numbers, Noto Sans
embedded, A4 portrait."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from reports.pdf import write_pdf
from tests.unit.reports.test_xlsx import sample_report

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="needs poppler-utils (apt-get install poppler-utils)"
)


def _poppler(tool: str, pdf: Path, *args: str) -> str:
    done = subprocess.run(
        [tool, *args, str(pdf), "-"] if tool == "pdftotext" else [tool, str(pdf)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return done.stdout.decode("utf-8")


@pytest.fixture(scope="module")
def vi_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "review.pdf"
    path.write_bytes(write_pdf(sample_report(), "vi"))
    return path


def test_vietnamese_text_week_and_numbers_come_back_out(vi_pdf: Path) -> None:
    content = _poppler("pdftotext", vi_pdf, "-layout")
    assert "Thành phố Đà Nẵng" in content
    assert "Báo cáo KPI tuần" in content
    assert "2026-W47" in content
    assert "16/11/2026 – 22/11/2026" in content
    assert "07:05" in content  # generated 00:05 UTC, shown in local time
    lines = content.splitlines()
    ratio = next(line for line in lines if "Hồ sơ giải quyết đúng hạn" in line)
    for shown in ("92,5 %", "90,0 %", "+2,5 điểm %", "95,0 %", "Gần đạt"):
        assert shown in ratio
    pm25 = next(line for line in lines if "Bụi mịn PM2.5" in line)
    assert "35,3 µg/m³" in pm25
    assert "-5,7 µg/m³" in pm25
    assert "Đạt" in pm25
    noise = next(line for line in lines if "Tiếng ồn" in line and "không có dữ liệu" in line)
    assert noise
    hai_van = next(line for line in lines if "Phường Hải Vân" in line and "20194" in line)
    assert "97,0 %" in hai_van
    assert "+2" in hai_van
    lien_chieu = next(line for line in lines if "Phường Liên Chiểu" in line)
    assert lien_chieu.rstrip().endswith("-1")
    assert "Nghiêm trọng" in content
    assert "Chưa xác nhận" in content
    assert "Trung tâm IOC Đà Nẵng" in content
    assert "Trang 1/1" in content


def test_english_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "en.pdf"
    path.write_bytes(write_pdf(sample_report(), "en"))
    content = _poppler("pdftotext", path, "-layout")
    assert "Weekly KPI review" in content
    assert "Da Nang City" in content
    assert "92.5 %" in content
    assert "Page 1/1" in content
    assert "Thành phố" not in content


def test_fonts_embedded_and_page_is_a4(vi_pdf: Path) -> None:
    fonts = _poppler("pdffonts", vi_pdf)
    noto = [line for line in fonts.splitlines() if "NotoSans" in line]
    assert len(noto) == 2  # regular and bold
    assert all(" yes " in line for line in noto)  # the "emb" column
    info = _poppler("pdfinfo", vi_pdf)
    assert "595.28 x 841.89 pts (A4)" in info


def test_a_long_league_table_runs_onto_page_two_with_its_header(tmp_path: Path) -> None:
    report = sample_report()
    report = replace(report, league=report.league * 20)
    path = tmp_path / "long.pdf"
    path.write_bytes(write_pdf(report, "vi"))
    assert "Pages:           2" in _poppler("pdfinfo", path)
    second = subprocess.run(
        ["pdftotext", "-f", "2", "-l", "2", "-layout", str(path), "-"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode("utf-8")
    assert "Tên đơn vị" in second
    assert "Trang 2/2" in second
