"""Alerts that reach a person: rules evaluated on the store, a pure state machine, a duty
roster with escalation, per-person grouped e-mail through a database outbox.

    settings       core/settings_rules.py (rules), core/settings_alerts.py (roster, delivery)
    rules.py       a rule of any type (threshold, no_data, rate, kpi) → Result per unit/device
    evaluate.py    judging values against a rule, with hysteresis (pure)
    state.py       AlertState + transition(): ok, pending, firing, resolved, no_data, error
    rule_text.py   the words for a rule, a value, a condition (vi, en)
    facts.py       AlertFacts, Person, DutyStep: what an event says, shared by the steps below
    event_facts.py an alert state → the AlertFacts of one event
    places.py      units and devices named, their parents and unit pages
    roster.py      duty roster (config + CSV), who is on duty, the duty chain of a unit
    escalation.py  due escalations and reminders of unacknowledged episodes (pure)
    grouping.py    pending deliveries → one e-mail per person (pure)
    render.py      alerts grouped for one person → Notification (templates/, chart.py)
    chart.py       the trend as a small PNG, zlib only
    links.py       signed acknowledge links
    repository.py  alert_states + notification_log (events) on SQLAlchemy Core
    delivery_tables.py  the tables and their migrations (component "alerts")
    outbox.py      deliveries and e-mails: route, queue, claim, mark
    leader.py      the evaluator lease: one active evaluator
    silencing.py   silences hold and release events
    actions.py     acknowledgements, notes, silences, audit log
    dispatch.py    escalate → route → group → send
    service.py     AlertService: run_once() / run_forever()
    wiring.py      build_alert_service(): the engine from the settings
    email.py       SmtpNotifier: the Notifier port over smtplib
    mailbox.py     MailboxServer: the demo's local SMTP server writing .eml files

Nothing here connects at import time; ``core/cli_alerts.py`` and ``core/demo.py`` wire it.
Design: docs/design/014-alert-delivery.md.
"""
