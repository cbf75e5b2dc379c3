"""Component ids, in one place so layout, callbacks and tests agree."""

from __future__ import annotations

URL = "url"
TEXT_PX = "text-px"  # dcc.Store: the page's root font size in px, set in the browser
REFRESH = "refresh-interval"

SITE_TITLE = "site-title"
METRIC_LABEL = "metric-label"
METRIC = "metric-select"
LANG_LABEL = "lang-label"
LANG = "lang-select"
UPDATED_AT = "updated-at"
DEAD_LETTERS = "dead-letter-badge"
MAP_STATUS = "map-status"

MAP = "map"
MAP_DRAWN = "map-drawn"  # dcc.Store: (metric, lang) the figure on screen was built for
MAP_UPDATE = "map-update"  # dcc.Store: a refresh's colours, applied in the browser
MAP_APPLIED = "map-applied"  # dcc.Store: the drawn key of the last update applied
LEGEND = "legend"

PLACE = "place"  # dcc.Store: the unit whose children the map shows ("" = the country)
BREADCRUMB = "breadcrumb"
SEARCH = "unit-search"
SEARCH_LABEL = "unit-search-label"
DAY = "map-day"  # the day the map shows (input type=date); empty = live
DAY_LABEL = "map-day-label"
HISTORY_NOTE = "history-note"
SEARCH_RESULTS = "unit-search-results"

RANGE = "overview-range"  # the panel's time range: live, 24h, 7d, 30d, custom
RANGE_DAYS = "overview-days"  # the custom range's first and last local day
RANGE_LABEL = "overview-range-label"
SELECTED_UNIT = "selected-unit"  # dcc.Store: the code of the unit shown in the panel
PANEL = "unit-panel"
TREND = "unit-trend"

NAV_LINKS = "nav-links"  # the links between pages (dashboard/pages.py)
USER_BOX = "user-box"  # who is signed in, and the sign-out button
PIPELINE_TITLE = "pipeline-title"
PIPELINE_TABLE = "pipeline-table"
