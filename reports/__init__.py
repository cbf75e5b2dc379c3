"""The weekly KPI review for leaders: data (weekly.py), the page (dashboard/review_page.py),
exports to XLSX and PDF, ``cityops report weekly`` and the Monday e-mail.

    model.py    WeeklyReport and its rows: what the page, the files and the e-mail show
    weeks.py    ISO weeks in local time (Monday 00:00 to Sunday 24:00, site.timezone)
    weekly.py   build_weekly(): the report of one unit and week from the store and state DB
"""
