/* The wall screen's watchman (dashboard/wall_page.py). Loaded on the wall page only.
 *
 * - The clock ticks here, in the site's time zone, corrected by the server's time of the
 *   last good beat: it keeps going while the server is away.
 * - Every good beat renews #wall-stamp ("epoch ms|version|HH:MM|slot start|slot end").
 *   Two beats without a new stamp: the banner "Dữ liệu cũ từ HH:MM" shows over the last
 *   picture, which stays. The next good beat hides it.
 * - A stamp with another version (the server came back with another configuration or
 *   code): reload, once the page's own address answers 200 (never into an error page).
 * - A callback answered 410: the wall link was revoked; say so over the screen.
 * Nothing here grows: fixed elements, replaced text, one timer.
 */
(function () {
    "use strict";

    const state = { lastStamp: null, lastGood: Date.now(), lastClock: null, offset: 0,
        start: 0, end: 0, reloading: false, revoked: false };

    function root() { return document.getElementById("wall-root"); }

    function texts(el) {
        try { return JSON.parse(el.getAttribute("data-texts") || "{}"); } catch (e) { return {}; }
    }

    function two(n) { return (n < 10 ? "0" : "") + n; }

    function localParts(ms, tz) {
        const parts = {};
        const format = new Intl.DateTimeFormat("en-GB", { timeZone: tz, hourCycle: "h23",
            year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
            minute: "2-digit", weekday: "short" });
        for (const p of format.formatToParts(new Date(ms))) parts[p.type] = p.value;
        const days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        parts.weekdayIndex = days.indexOf(parts.weekday);
        return parts;
    }

    function setText(id, value) {
        const el = document.getElementById(id);
        if (el && el.textContent !== value) el.textContent = value;
    }

    function tickClock(el, t) {
        const p = localParts(Date.now() + state.offset, t.tz || "Asia/Ho_Chi_Minh");
        setText("wall-time", p.hour + ":" + p.minute);
        const weekday = (t.weekdays || [])[p.weekdayIndex] || "";
        setText("wall-date", weekday + ", " + p.day + "/" + p.month + "/" + p.year);
        if (state.lastClock === null) state.lastClock = p.hour + ":" + p.minute;
    }

    function reloadWhenAnswering() {
        if (state.reloading) return;
        state.reloading = true;
        fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
            .then(function (r) {
                if (r.ok) { window.location.reload(); } else { state.reloading = false; }
            })
            .catch(function () { state.reloading = false; });
    }

    function readStamp(el) {
        const stampEl = document.getElementById("wall-stamp");
        const value = stampEl ? stampEl.textContent : "";
        if (!value || value === state.lastStamp) return;
        state.lastStamp = value;
        const parts = value.split("|");
        state.lastGood = Date.now();
        state.offset = Number(parts[0]) - Date.now();
        state.lastClock = parts[2] || state.lastClock;
        state.start = Number(parts[3] || 0);
        state.end = Number(parts[4] || 0);
        if (parts[1] && parts[1] !== el.getAttribute("data-version")) reloadWhenAnswering();
    }

    function showStale(el, t) {
        const banner = document.getElementById("wall-stale");
        if (!banner) return;
        const beat = Number(el.getAttribute("data-beat_ms")) || 10000;
        const stale = Date.now() - state.lastGood > 2.5 * beat;
        if (stale) {
            const words = (t.stale || "Stale since {time}").replace("{time}", state.lastClock || "");
            if (banner.textContent !== words) banner.textContent = words;
        }
        if (banner.hidden === stale) banner.hidden = !stale;
        document.documentElement.classList.toggle("wall-is-stale", stale);
    }

    function moveProgress() {
        const bar = document.getElementById("wall-progress-bar");
        if (!bar || !state.end || state.end <= state.start) return;
        const now = Date.now() + state.offset;
        const share = Math.min(Math.max((now - state.start) / (state.end - state.start), 0), 1);
        bar.style.width = (share * 100).toFixed(1) + "%";
    }

    function showRevoked() {
        if (state.revoked) return;
        state.revoked = true;
        const el = root();
        const words = (el && texts(el).revoked) || "Liên kết đã bị thu hồi";
        const overlay = document.createElement("div");
        overlay.className = "wall-revoked";
        overlay.id = "wall-revoked";
        overlay.textContent = words;
        document.body.appendChild(overlay);
    }

    const original = window.fetch;
    if (original) {
        window.fetch = function () {
            return original.apply(this, arguments).then(function (response) {
                if (response.status === 410 && String(response.url).indexOf("_dash-") >= 0) {
                    showRevoked();
                }
                return response;
            });
        };
    }

    window.setInterval(function () {
        const el = root();
        if (!el) return;
        const t = texts(el);
        readStamp(el);
        tickClock(el, t);
        showStale(el, t);
        moveProgress();
    }, 250);
})();
