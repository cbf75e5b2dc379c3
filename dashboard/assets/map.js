/* The map's refresh, applied in the browser: window.dash_clientside.cityops.recolour
 * (dashboard/callbacks.py binds it; dashboard/views/map.py, map_update, builds its input).
 *
 * A refresh that changes only colours and hover texts (the wall's steady state) sets the
 * fill of each drawn path and the values plotly.js keeps for later restyles, hover and
 * click data. plotly.js itself has no cheap path for that: z is a "calc" attribute, so
 * Plotly.react or Plotly.restyle recompute and re-project the whole geometry (300 ms for
 * 3,321 communes on the reference machine). Anything else (old-data marks, outlines, a
 * device changing state, hence symbol) goes through Plotly.restyle. The unit traces come
 * first in the figure; the device trace, when there is one, is the last.
 */
(function () {
    "use strict";

    const clientside = (window.dash_clientside = window.dash_clientside || {});

    function same(a, b) {
        return JSON.stringify(a === undefined ? null : a) === JSON.stringify(b === undefined ? null : b);
    }

    function lineOf(data) {
        return (data.marker && data.marker.line) || {};
    }

    function colourOnly(gd, traces) {
        return traces.every((trace, index) => {
            const data = gd.data[index];
            const line = lineOf(data);
            return (
                data.type === "choropleth" &&
                gd.calcdata[index] &&
                data.z && data.z.length === trace.z.length &&
                same(data.selectedpoints, trace.selectedpoints) &&
                same(line.color, trace.line_color) &&
                same(line.width, trace.line_width)
            );
        });
    }

    function devicesColourOnly(gd, devices, index) {
        const data = gd.data[index];
        const marker = (data && data.marker) || {};
        return (
            data && data.type === "scattergeo" && gd.calcdata[index] &&
            same(marker.symbol, devices.symbol) && same(marker.size, devices.size)
        );
    }

    function recolourInPlace(gd, traces) {
        // The values plotly.js keeps: each calc point's z (its next restyle or redraw
        // colours from it, also one still pending), and the trace's arrays (hover and
        // click data read customdata from them).
        traces.forEach((trace, index) => {
            for (const point of gd.calcdata[index]) point.z = trace.z[point.index];
            for (const data of [gd.data[index], gd._fullData[index]]) {
                data.z = trace.z;
                data.customdata = trace.customdata;
            }
        });
        // The drawn paths: each trace's <g class="trace choropleth"> is bound to its calc
        // trace, each path to its calc point (d3's __data__).
        gd.querySelectorAll(".choroplethlayer .trace.choropleth").forEach((group) => {
            const trace = traces[group.__data__[0].trace.index];
            if (!trace) return;
            group.querySelectorAll("path.choroplethlocation").forEach((path) => {
                path.setAttribute("fill", trace.fill[path.__data__.index]);
            });
        });
    }

    function recolourDevicesInPlace(gd, devices, index) {
        for (const data of [gd.data[index], gd._fullData[index]]) {
            data.marker.color = devices.color;
            data.hovertext = devices.hovertext;
        }
        for (const point of gd.calcdata[index]) point.mc = devices.color[point.i];
        gd.querySelectorAll(".scattergeo .trace .points path.point").forEach((path) => {
            const point = path.__data__;
            if (point && point.i !== undefined && point.i < devices.color.length) {
                path.style.fill = devices.color[point.i];
            }
        });
    }

    function restyle(gd, traces, devices, deviceIndex) {
        const column = (key) => traces.map((trace) => trace[key]);
        const update = {
            z: column("z"),
            customdata: column("customdata"),
            selectedpoints: column("selectedpoints"),
            "marker.line.color": column("line_color"),
            "marker.line.width": column("line_width"),
        };
        const indices = traces.map((_, index) => index);
        if (devices) {
            // One restyle for all: the geometry is computed once. An undefined entry leaves
            // that trace's attribute alone (null would reset it to its default).
            const none = () => traces.map(() => undefined);
            for (const key of Object.keys(update)) update[key].push(undefined);
            update["marker.color"] = none().concat([devices.color]);
            update["marker.symbol"] = none().concat([devices.symbol]);
            update["marker.size"] = none().concat([devices.size]);
            update.hovertext = none().concat([devices.hovertext]);
            indices.push(deviceIndex);
        }
        return window.Plotly.restyle(gd, update, indices);
    }

    clientside.cityops = Object.assign(clientside.cityops || {}, {
        // update: {key, traces: [{z, fill, customdata, selectedpoints, line_color,
        // line_width}], devices?: {color, symbol, size, hovertext}}; returns the key once
        // applied (map-applied).
        recolour(update) {
            const noUpdate = clientside.no_update;
            const gd = document.querySelector("#map .js-plotly-plot");
            const wanted = update ? update.traces.length + (update.devices ? 1 : 0) : 0;
            if (!update || !gd || !gd.calcdata || gd.data.length !== wanted) {
                return noUpdate; // no figure yet: the next refresh brings the values again
            }
            const deviceIndex = update.traces.length;
            const devices = update.devices;
            if (
                colourOnly(gd, update.traces) &&
                (!devices || devicesColourOnly(gd, devices, deviceIndex))
            ) {
                recolourInPlace(gd, update.traces);
                if (devices) recolourDevicesInPlace(gd, devices, deviceIndex);
            } else if (gd.querySelector(".choroplethlayer path.choroplethlocation")) {
                restyle(gd, update.traces, devices, deviceIndex);
            } else {
                return noUpdate; // still drawing: restyling would start the drawing over
            }
            return update.key;
        },
    });
})();
