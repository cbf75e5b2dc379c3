"""Threshold alerts: rules evaluated on the store, a pure state machine, e-mail that reaches
a person.

    evaluate.py    rule + latest values per unit → Result per unit (pure)
    state.py       AlertState + transition(): ok, pending, firing, resolved, no_data, error
    render.py      Transition → Notification (Vietnamese first, English second; templates/)
    stages.py      dedup → retry → send → record, assembled in build_pipeline()
    repository.py  alert_states + notification_log (the outbox) on SQLAlchemy Core
    email.py       SmtpNotifier: the Notifier port over smtplib
    service.py     AlertService: run_once() / run_forever(), the wiring
    mailbox.py     MailboxServer: the demo's local SMTP server writing .eml files

Nothing here connects at import time; ``core/cli.py`` and ``core/demo.py`` wire it.
"""
