// The console's maps (Leaflet, no inline script: the CSP forbids it).
//  - #case-map (the map page): the grids from data-source as polygons coloured by their
//    counts, the cases as markers coloured by urgency and overdue, clustered when dense;
//    a click on a marker opens the case. Polls data-source every data-poll seconds with
//    If-None-Match: 304 while nothing changed. When the cases are too many to send one by
//    one the server answers `aggregated` (no points: the grids' counts): the page draws one
//    marker per grid (a click zooms to the grid) and from then on asks for its view's
//    bounds (&bbox=), getting that area's points once they are few enough.
//  - .place-map[data-place] (the case page): the case's grid and its pin, replacing the
//    server's sketch; drawn again after htmx swaps the case page's live part.
//  - #audience-map (the notice composer, the meeting form): the grids of the tree of ticks beside it
//    (#scope-tree, the form's field); a click on a grid ticks or unticks it, and the map
//    shows what the tree has ticked (a community's tick chooses its grids).
// No tile layer unless data-tiles holds a URL template (GRIDBOT_MAP_TILES).
// Every text from the data goes in through textContent, never as HTML.
"use strict";
(function () {
  var URGENCY_COLOURS = { U1: "#b3261e", U2: "#c26a00", U3: "#1f5fbf", U4: "#5b6675" };

  function textNode(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    el.textContent = text;
    return el;
  }

  function format(template, values) {
    return String(template || "").replace(/\{(\w+)\}/g, function (all, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : all;
    });
  }

  function newMap(element, tiles, attribution) {
    var map = L.map(element, { zoomSnap: 0.25, maxZoom: 19, attributionControl: Boolean(tiles) });
    if (tiles) {
      L.tileLayer(tiles, { maxZoom: 19, attribution: "" }).addTo(map);
      // the attribution as text, not HTML
      if (attribution) map.attributionControl.addAttribution(
        attribution.replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }));
    }
    return map;
  }

  function gridStyle(props) {
    var colour = props.overdue > 0 ? "#b3261e" : props.count > 0 ? "#c26a00" : "#1e7b3a";
    var weight = Math.min(0.55, 0.12 + 0.06 * Math.sqrt(props.count || 0));
    return { color: "#1f5fbf", weight: 1.5, fillColor: colour, fillOpacity: weight,
             className: "grid-area grid-" + props.code };
  }

  // --- the map page --------------------------------------------------------------------
  function caseMap(element) {
    var map = newMap(element, element.getAttribute("data-tiles"),
                     element.getAttribute("data-attribution"));
    var categories = {};
    try {
      JSON.parse(element.getAttribute("data-categories") || "[]").forEach(function (pair) {
        categories[pair[0]] = pair[1];
      });
    } catch (e) { /* names stay codes */ }
    var status = document.getElementById("map-status");
    map.on("zoomend", function () { element.setAttribute("data-zoom", String(map.getZoom())); });
    var grids = L.geoJSON(null, {
      style: function (feature) { return gridStyle(feature.properties); },
      onEachFeature: function (feature, layer) {
        var p = feature.properties;
        var label = document.createElement("div");
        label.appendChild(textNode("b", "", p.name));
        label.appendChild(textNode("span", "counts",
          format(element.getAttribute("data-text-counts"), { n: p.count, o: p.overdue })));
        // above the grid's middle, where its cases' markers are
        layer.bindTooltip(label, { permanent: true, direction: "top", offset: [0, -14],
                                   className: "grid-label" + (p.overdue ? " has-overdue" : "") });
      }
    }).addTo(map);
    // No split and merge animation: the markers are replaced when a zoom brings the new
    // view's cases, and a replacement during that animation left the clusters unable to
    // open (spiderfy refuses while it believes an animation runs).
    var clusters = L.markerClusterGroup({
      showCoverageOnHover: false, maxClusterRadius: 40, spiderfyOnMaxZoom: true, animate: false,
      iconCreateFunction: function (cluster) {
        var overdue = cluster.getAllChildMarkers().some(function (m) { return m.options.overdue; });
        var n = cluster.getChildCount();
        return L.divIcon({
          html: "<div><span>" + Number(n) + "</span></div>",
          className: "marker-cluster case-cluster " + (overdue ? "has-overdue" : "marker-cluster-small"),
          iconSize: L.point(40, 40)
        });
      }
    });  // added to the map once it has a view (the clusters are made for a zoom)
    var bubbles = L.layerGroup();  // one marker per grid while the server aggregates
    var caseUrl = element.getAttribute("data-case-url");
    var etag = null;
    var fitted = false;
    var bounded = false;  // once an answer was aggregated: ask for the view's bounds
    var box = null;  // the bounds last asked for (the view and a margin)
    var boxHasPoints = false;  // ...and whether their answer held the points
    var lastUrl = null;
    var drawnText = null;  // the answer drawn last
    var asked = 0;  // the latest request: an older answer arriving late is dropped

    function marker(point) {
      var number = point[0], urgency = point[3], overdue = point[5] === 1;
      var icon = L.divIcon({
        className: "case-marker u-" + urgency + (overdue ? " overdue" : ""),
        html: "", iconSize: [18, 18], iconAnchor: [9, 9]
      });
      var m = L.marker([point[1], point[2]], { icon: icon, overdue: overdue,
                                               keyboard: true, title: number });
      var tip = document.createElement("div");
      tip.appendChild(textNode("b", "", number));
      tip.appendChild(textNode("span", "", " " + (categories[point[4]] || point[4]) + " " + urgency));
      if (overdue) tip.appendChild(textNode("span", "late", " " + element.getAttribute("data-text-overdue")));
      m.bindTooltip(tip, { direction: "top", offset: [0, -8] });
      m.on("click", function () { window.location.href = caseUrl + encodeURIComponent(number); });
      m.on("add", function () {
        var el = m.getElement();
        if (el) el.setAttribute("data-case", number);
      });
      return m;
    }

    // a grid's cases as one marker (when the server sent counts, not points)
    function gridMarker(layer) {
      var p = layer.feature.properties;
      var area = layer.getBounds();
      var icon = L.divIcon({
        html: "<div><span>" + Number(p.count) + "</span></div>",
        className: "marker-cluster case-cluster grid-cluster " + (p.overdue ? "has-overdue" : "marker-cluster-small"),
        iconSize: L.point(40, 40)
      });
      var m = L.marker(area.getCenter(), { icon: icon, keyboard: true, title: p.name });
      m.on("click", function () { map.fitBounds(area, { padding: [12, 12] }); });
      m.on("add", function () {
        var el = m.getElement();
        if (el) el.setAttribute("data-grid", p.code);
      });
      return m;
    }

    function draw(data) {
      grids.clearLayers();
      grids.addData(data.grids);
      if (!fitted) {
        if (data.grids.features.length) map.fitBounds(grids.getBounds(), { padding: [12, 12] });
        else map.setView([30.28, 120.12], 14);
        fitted = true;
        clusters.addTo(map);
        bubbles.addTo(map);
        // after the first view: zooming or panning asks for the new view's cases
        map.on("moveend", function () { if (bounded && source() !== lastUrl) load(); });
      }
      clusters.clearLayers();
      bubbles.clearLayers();
      clusters.addLayers(data.points.map(marker));
      boxHasPoints = !data.aggregated;
      if (data.aggregated) {
        bounded = true;
        grids.eachLayer(function (layer) {
          if (layer.feature.properties.count > 0) bubbles.addLayer(gridMarker(layer));
        });
      }
      element.setAttribute("data-mode", data.aggregated ? "grids" : "points");
      element.setAttribute("data-points", String(data.points.length));
      element.setAttribute("data-grid-markers", String(bubbles.getLayers().length));
      element.setAttribute("data-grids", String(data.grids.features.length));
      if (status) {
        var text = data.aggregated ? "data-text-aggregated" : data.truncated ? "data-text-truncated" : "data-text-shown";
        status.textContent = format(element.getAttribute(text),
                                    { n: data.aggregated ? data.total : data.points.length });
      }
      element.setAttribute("data-version", etag || "");
      element.dispatchEvent(new CustomEvent("map:drawn", { bubbles: true }));
    }

    function source() {
      var url = element.getAttribute("data-source");
      if (!bounded) return url;
      // the same bounds while the view stays inside bounds whose points we hold (a poll
      // then gets 304, and a zoom into a cluster keeps its markers); else the new view's
      var view = map.getBounds();
      if (!(box && boxHasPoints && box.contains(view))) box = view.pad(0.1);
      var edges = [box.getWest(), box.getSouth(), box.getEast(), box.getNorth()].map(function (n) {
        return n.toFixed(5);
      });
      return url + (url.indexOf("?") < 0 ? "?" : "&") + "bbox=" + edges.join(",");
    }

    function load() {
      var headers = etag ? { "If-None-Match": etag } : {};
      var mine = ++asked;
      lastUrl = source();
      return fetch(lastUrl, { headers: headers, credentials: "same-origin" })
        .then(function (response) {
          if (mine !== asked || response.status === 304 || !response.ok) return null;
          etag = response.headers.get("ETag");
          return response.text();
        })
        .then(function (text) {
          if (!text) return;
          // the same as drawn (other bounds, the same counts): nothing is redrawn, so an
          // opened cluster stays open and a click at that moment is not lost
          if (text === drawnText) {
            element.setAttribute("data-version", etag || "");
            return;
          }
          drawnText = text;
          draw(JSON.parse(text));
        })
        .catch(function (error) {  // tried again at the next tick
          element.setAttribute("data-error", String(error && error.message || error));
        });
    }

    load();
    var every = Math.max(1, Number(element.getAttribute("data-poll")) || 3) * 1000;
    window.setInterval(function () { if (!document.hidden) load(); }, every);
  }

  // --- a case's small map --------------------------------------------------------------
  function placeMap(figure) {
    if (figure.getAttribute("data-drawn")) return;
    figure.setAttribute("data-drawn", "1");
    fetch(figure.getAttribute("data-place"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data || (!data.grid && !data.point)) return;
        var holder = document.createElement("div");
        holder.className = "place-leaflet";
        var sketch = figure.querySelector("svg");
        figure.insertBefore(holder, sketch || figure.firstChild);
        if (sketch) sketch.remove();
        var map = newMap(holder, "", "");
        var layers = [];
        var bounds = null;
        if (data.grid) {
          var outline = L.geoJSON(data.grid, { style: function () {
            return { color: "#1f5fbf", weight: 2, fillColor: "#e7eef8", fillOpacity: 0.7,
                     className: "grid-area grid-" + (data.grid.properties.code || "") };
          } });
          layers.push(outline);
          bounds = outline.getBounds();
        }
        if (data.point) {
          layers.push(L.circleMarker(data.point, { radius: 7, color: "#fff", weight: 2,
            fillColor: "#b3261e", fillOpacity: 1, className: "case-pin" }));
          bounds = bounds ? bounds.extend(data.point) : L.latLngBounds([data.point, data.point]);
        }
        // the view first: Leaflet draws a layer for the map's view
        if (bounds.getNorthEast().equals(bounds.getSouthWest())) map.setView(data.point, 17);
        else map.fitBounds(bounds, { padding: [12, 12] });
        layers.forEach(function (layer) { layer.addTo(map); });
        figure.setAttribute("data-drawn", "leaflet");
      })
      .catch(function (error) {  // the server's sketch stays
        figure.setAttribute("data-drawn", "");
        figure.setAttribute("data-error", String(error && error.message || error));
      });
  }

  // --- a notice's or a meeting's audience (_scope_picker.html) -------------------------
  // The tree's boxes (name=scope, data-parent: the box above) are the form's field; this
  // keeps a ticked box's boxes below it ticked and disabled (covered: only the top one is
  // sent) and draws the map from them. A grid covered by a ticked community that is
  // clicked away leaves the community's other grids ticked.
  var CHOSEN = { color: "#1f5fbf", weight: 2.5, fillColor: "#1f5fbf", fillOpacity: 0.45 };
  var PARTLY = { color: "#1f5fbf", weight: 2, fillColor: "#7aa2df", fillOpacity: 0.25 };
  var UNCHOSEN = { color: "#5b6675", weight: 1.2, fillColor: "#ffffff", fillOpacity: 0.55 };

  function audienceMap(element) {
    var tree = document.getElementById("scope-tree");
    if (!tree) return;
    var boxes = {}, order = [], children = {};
    Array.prototype.forEach.call(tree.querySelectorAll("input[type=checkbox][name=scope]"), function (box) {
      boxes[box.value] = box;
      order.push(box.value);
      var parent = box.getAttribute("data-parent") || "";
      (children[parent] = children[parent] || []).push(box.value);
    });
    function parentOf(value) {
      var parent = boxes[value].getAttribute("data-parent") || "";
      return boxes[parent] ? parent : "";
    }
    function tickedAbove(value) {  // the ticked box a covered box hangs from
      for (var up = parentOf(value); up; up = parentOf(up)) {
        if (boxes[up].checked && !boxes[up].disabled) return up;
      }
      return "";
    }
    function nameOf(value) {
      return (boxes[value].parentNode.textContent || value).trim();
    }
    var shapes = {};  // grid code -> its layer
    var status = document.getElementById("audience-chosen");

    function sync() {
      order.forEach(function (value) {  // parents come before their children
        var box = boxes[value], parent = parentOf(value);
        var covered = Boolean(parent) && boxes[parent].checked;
        if (covered) { box.checked = true; box.disabled = true; }
        else if (box.disabled) { box.checked = false; box.disabled = false; }
        box.parentNode.classList.toggle("covered", covered);
      });
      var chosen = [];
      Object.keys(shapes).forEach(function (code) {
        var box = boxes[code];
        var partly = !box.checked && (children[code] || []).some(function (b) { return boxes[b].checked; });
        shapes[code].setStyle(box.checked ? CHOSEN : partly ? PARTLY : UNCHOSEN);
        var path = shapes[code].getElement();
        if (path) {
          path.classList.toggle("chosen", box.checked);
          path.classList.toggle("partly", partly);
        }
        if (box.checked) chosen.push(code);
      });
      element.setAttribute("data-chosen", chosen.join(","));
      if (status) {
        var names = order.filter(function (v) { return boxes[v].checked && !boxes[v].disabled; }).map(nameOf);
        status.textContent = names.length
          ? format(element.getAttribute("data-text-chosen"),
                   { names: names.join(element.getAttribute("data-text-joiner") || ", ") })
          : element.getAttribute("data-text-none");
      }
    }

    function toggle(code) {
      var top = tickedAbove(code);
      if (!top) { boxes[code].checked = !boxes[code].checked; sync(); return; }
      // untick the covering box and tick what it covered, but for the way down to `code`
      var path = [];
      for (var v = code; v && v !== top; v = parentOf(v)) path.unshift(v);
      boxes[top].checked = false;
      var node = top;
      path.forEach(function (step) {
        (children[node] || []).forEach(function (child) {
          boxes[child].disabled = false;
          boxes[child].checked = child !== step;
        });
        node = step;
      });
      sync();
    }

    var map = newMap(element, element.getAttribute("data-tiles"),
                     element.getAttribute("data-attribution"));
    var grids = L.geoJSON(null, {
      filter: function (feature) {  // only the grids this person may address (the tree's)
        var box = boxes[feature.properties.code];
        return Boolean(box) && box.getAttribute("data-level") === "grid";
      },
      style: function (feature) {
        return L.extend({ className: "grid-area audience-grid grid-" + feature.properties.code }, UNCHOSEN);
      },
      onEachFeature: function (feature, layer) {
        var code = feature.properties.code;
        shapes[code] = layer;
        layer.bindTooltip(textNode("b", "", feature.properties.name),
                          { permanent: true, direction: "center", className: "grid-label" });
        layer.on("click", function () { toggle(code); });
      }
    });
    tree.addEventListener("change", sync);
    fetch(element.getAttribute("data-source"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        var box = document.getElementById("audience-map-box");
        if (box) box.hidden = false;
        map.invalidateSize();  // it was hidden: Leaflet measures it now
        grids.addData(data.grids);
        if (grids.getLayers().length) map.fitBounds(grids.getBounds(), { padding: [12, 12] });
        else map.setView([30.28, 120.12], 14);
        grids.addTo(map);
        sync();
        element.setAttribute("data-grids", String(grids.getLayers().length));
        element.dispatchEvent(new CustomEvent("map:drawn", { bubbles: true }));
      })
      .catch(function (error) {  // the tree alone still works
        element.setAttribute("data-error", String(error && error.message || error));
      });
    sync();
  }

  function start() {
    if (typeof L === "undefined") return;
    var audience = document.getElementById("audience-map");
    if (audience && !audience.getAttribute("data-started")) {
      audience.setAttribute("data-started", "1");
      audienceMap(audience);
    }
    var page = document.getElementById("case-map");
    if (page && !page.getAttribute("data-started") && L.markerClusterGroup) {
      page.setAttribute("data-started", "1");
      caseMap(page);
    }
    Array.prototype.forEach.call(document.querySelectorAll(".place-map[data-place]"), placeMap);
  }

  document.addEventListener("DOMContentLoaded", start);
  // htmx replaces the case page's live part when the case changes: draw its map again
  document.addEventListener("htmx:afterSettle", start);
})();
