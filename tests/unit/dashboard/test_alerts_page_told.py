"""Who is told, the e-mails and notes on the alerts console, through the page's plain
callback functions with crafted users and over HTTP (a commune officer's crafted note for
another commune, the CSV exports). The site: tests/unit/dashboard/test_alerts_page.py."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from alerts.actions import AckKey
from dashboard.alerts_data import AlertSource
from dashboard.alerts_page import add_note_to_alert, render_alerts
from dashboard.views import alerts_forms as f
from tests.fixtures.signin import dash_headers, sign_in
from tests.unit.dashboard.alerts_seed import (
    AN,
    CAM_LE,
    CUONG,
    DA_NANG,
    HAI_VAN,
    NOW,
    SMTP_REFUSED,
    add_log,
    officer,
    tell,
)
from tests.unit.dashboard.test_alerts_page import (  # noqa: F401 - the site fixture
    HAI_VAN_KEY,
    Site,
    dependency,
    ids_of,
    site,
)
from tests.unit.dashboard.test_panel_and_legend import find, texts


def seed_told(on: Site) -> None:
    """A reminder of Hải Vân's episode 2: An's e-mail went, Cường's was refused."""
    engine = on.engine
    fired = NOW - timedelta(minutes=30)
    reminder = add_log(engine, "pm25-bad", HAI_VAN, 2, "reminder-1", fired, "pending", "{}")
    tell(engine, reminder, [(AN, 0, "sent"), (CUONG, 1, "failed")], at=NOW)


def test_notes_from_the_page(site: Site) -> None:  # noqa: F811
    hierarchy = site.ctx.hierarchy
    hai_van = officer(hierarchy, HAI_VAN)
    view = render_alerts(site.ctx, hai_van, "vi")
    assert ids_of(view.active, f.NOTE_BUTTON) == [
        {"type": f.NOTE_BUTTON, "key": HAI_VAN_KEY, "at": "active"}
    ]
    assert {"type": f.NOTE_BUTTON, "key": HAI_VAN_KEY, "at": "history"} in ids_of(
        view.history, f.NOTE_BUTTON
    )
    refused = add_note_to_alert(site.ctx, officer(hierarchy, CAM_LE), HAI_VAN_KEY, "x", "vi")
    assert (refused.changed, texts(refused.message)) == (
        False,
        ["không có cảnh báo này trong các đơn vị của bạn"],
    )
    empty = add_note_to_alert(site.ctx, hai_van, HAI_VAN_KEY, "", "en")
    assert texts(empty.message) == ["the note's text is required"]
    done = add_note_to_alert(site.ctx, hai_van, HAI_VAN_KEY, "Đã xử lý xong nguồn khói", "vi")
    assert done.changed is True
    assert texts(done.message) == [
        "Đã lưu ghi chú: Bụi mịn PM2.5 ở mức Xấu – Phường Hải Vân, Thành phố Đà Nẵng"
    ]
    # Under the alert and in its history; a leader reads it, without note buttons.
    leader = render_alerts(site.ctx, officer(hierarchy, DA_NANG, "leader"), "vi")
    row = find(leader.active, lambda n: getattr(n, "data-unit", None) == HAI_VAN)[0]
    assert "Ghi chú xử lý" in texts(row)
    assert "operator-20194, 15:00 02/11:" not in texts(row)
    assert "operator-20194, 08:00 02/11:" in texts(row)
    assert "Đã xử lý xong nguồn khói" in texts(row)
    assert "Đã xử lý xong nguồn khói" in texts(leader.history)
    assert ids_of(leader.active, f.NOTE_BUTTON) == []
    assert ids_of(leader.history, f.NOTE_BUTTON) == []
    assert "Đã xử lý xong nguồn khói" not in texts(
        render_alerts(site.ctx, officer(hierarchy, CAM_LE), "vi").active
    )


def test_told_and_failed_emails_on_the_page(site: Site) -> None:  # noqa: F811
    seed_told(site)
    hierarchy = site.ctx.hierarchy
    view = render_alerts(site.ctx, officer(hierarchy, HAI_VAN, "viewer"), "vi")
    told = find(view.active, lambda n: getattr(n, "data-email", None) == CUONG.email)
    assert [getattr(item, "data-status") for item in told] == ["failed"]
    assert "gửi lỗi" in texts(told[0])
    sent = find(view.active, lambda n: getattr(n, "data-email", None) == AN.email)[0]
    assert "đã gửi 08:00 02/11" in texts(sent)
    emails = " ".join(texts(view.emails))
    assert CUONG.email in emails
    assert SMTP_REFUSED in emails
    assert "Không có thư nào đang chờ gửi" in emails
    assert view.emails_csv.href == "/export/alerts_failed_emails.csv?lang=vi"
    duty = " ".join(texts(view.duty))
    assert "Phường Hải Vân, Thành phố Đà Nẵng:" in duty
    assert "Nguyễn Văn An" in duty
    assert "Trần Thị Bình" not in duty  # Cẩm Lệ's officer
    assert "15 phút" in duty  # escalation after 15 min (config.yaml)
    # Cẩm Lệ: no e-mail of theirs failed.
    cam_le = render_alerts(site.ctx, officer(hierarchy, CAM_LE), "en")
    assert "No e-mail about your units was refused" in texts(cam_le.emails)
    assert CUONG.email not in " ".join(texts(cam_le.emails))


def test_a_bad_roster_or_outbox_is_a_sentence(site: Site, tmp_path: Path) -> None:  # noqa: F811
    settings = site.ctx.settings
    alerts = settings.alerts.model_copy(update={"roster_file": str(tmp_path / "gone.csv")})
    ctx = replace(site.ctx, settings=settings.model_copy(update={"alerts": alerts}))
    view = render_alerts(ctx, officer(ctx.hierarchy, HAI_VAN), "vi")
    assert texts(view.duty)[0].startswith("Không đọc được lịch trực: alerts.roster_file")
    row = find(view.active, lambda n: getattr(n, "data-unit", None) == HAI_VAN)[0]
    assert "không có dữ liệu" in texts(row)  # the chain; the rest of the row is there
    assert "Bụi mịn PM2.5 ở mức Xấu" in texts(row)

    with site.engine.begin() as connection:  # the outbox's tables gone: no traceback
        connection.exec_driver_sql("ALTER TABLE alert_emails RENAME TO gone")
    broken = render_alerts(site.ctx, officer(site.ctx.hierarchy, HAI_VAN), "vi")
    assert texts(broken.emails)[0].startswith("Không tải được dữ liệu")
    history = find(broken.history, lambda n: getattr(n, "data-email", None) is not None)
    assert [getattr(cell, "data-email") for cell in history] == []
    assert "không có dữ liệu" in texts(broken.history)


def post_note(client: FlaskClient, key: str, note: str) -> Any:
    """What Dash's renderer posts when "Save the note" is pressed."""
    callback = dependency(client, f.NOTE_SUBMIT)
    body = {
        "output": callback["output"],
        "outputs": [
            {"id": part.split(".")[0], "property": part.split(".")[1].split("@")[0]}
            for part in callback["output"].strip(".").split("...")
        ],
        "inputs": [{"id": f.NOTE_SUBMIT, "property": "n_clicks", "value": 1}],
        "changedPropIds": [f"{f.NOTE_SUBMIT}.n_clicks"],
        "state": [
            {"id": f.NOTE_KEY, "property": "data", "value": key},
            {"id": f.NOTE_TEXT, "property": "value", "value": note},
            {"id": "lang-select", "property": "value", "value": "vi"},
            {"id": f.VERSION, "property": "data", "value": 0},
        ],
    }
    return client.post(
        "/alerts/_dash-update-component", data=json.dumps(body), headers=dash_headers(client)
    )


def test_over_http_notes_and_exports_keep_to_the_users_units(site: Site) -> None:  # noqa: F811
    seed_told(site)
    cam_le = site.client
    assert sign_in(cam_le, "cam-le").status_code == 303
    refused = post_note(cam_le, HAI_VAN_KEY, "không phải của tôi")
    assert "không có cảnh báo này trong các đơn vị của bạn" in refused.get_data(as_text=True)
    failed = cam_le.get("/export/alerts_failed_emails.csv").get_data(as_text=True)
    assert failed.splitlines()[1:] == []  # header only

    hai_van = site.client.application.test_client()
    assert sign_in(hai_van, "hai-van").status_code == 303
    done = post_note(hai_van, HAI_VAN_KEY, "Đã xử lý, chỉ số về mức Trung bình")
    assert "Đã lưu ghi chú" in done.get_data(as_text=True)
    source = AlertSource.from_context(site.ctx)
    notes = source.actions.notes([AckKey("pm25-bad", HAI_VAN, 2)])[AckKey("pm25-bad", HAI_VAN, 2)]
    assert [(note.author, note.text) for note in notes] == [
        ("hai-van", "Đã xử lý, chỉ số về mức Trung bình")
    ]
    history = hai_van.get("/export/alerts_history.csv?lang=vi").get_data(as_text=True)
    header, row = history.lstrip("\ufeff").splitlines()[:2]
    assert "email_status" in header
    assert "note_rows" not in header
    assert "Đã xử lý, chỉ số về mức Trung bình" in row
    active = hai_van.get("/export/alerts_active.csv").get_data(as_text=True)
    assert "Phạm Văn Cường <cuong@danang.example.vn> (1): failed" in active
    assert "told_rows" not in active
    assert SMTP_REFUSED in hai_van.get("/export/alerts_failed_emails.csv").get_data(as_text=True)
