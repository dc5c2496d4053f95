// Vigía web UI: live updates and small enhancements. Every page works without this file.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  function say(text) { if (status && text) { status.textContent = text; } }

  // Live parts: an element with data-live-topics and data-live-src is fetched again (an HTML
  // fragment rendered by the server for this viewer) whenever the stream reports an event on
  // one of its topics whose type starts with one of its data-live-types (default "incident.").
  // The stream only delivers events this account may see. A burst of events gives one fetch,
  // 150 ms after its first event; with data-live-min-ms the element is not fetched again sooner
  // than that after its last fetch (the detections dashboard, whose topic ticks once a second
  // per department), and events meanwhile are folded into the one pending fetch.
  var live = Array.prototype.slice.call(document.querySelectorAll("[data-live-src]"));
  var streaming = live.length > 0 && !!window.EventSource;
  if (streaming) {
    var topics = live.map(function (el) { return el.getAttribute("data-live-topics"); })
      .filter(function (t, i, all) { return all.indexOf(t) === i; }).join(",");
    var source = new EventSource("/api/v1/stream?topics=" + encodeURIComponent(topics));
    var timers = new Map();
    var fetched = new Map();
    // Once (re)connected, a part still waiting for something (a video being processed, whose
    // messages are not replayed) is fetched again, so nothing sent before is missed.
    source.onopen = function () {
      document.body.setAttribute("data-live", "on");
      live.forEach(function (el) { if (el.querySelector("[data-pending]")) { refresh(el); } });
    };
    source.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      // Control messages (subscribed, error, closed, resync_required) match no data-live-types;
      // aggregates such as detections.tick carry no id.
      if (!event || typeof event.type !== "string") { return; }
      live.forEach(function (el) {
        var types = (el.getAttribute("data-live-types") || "incident.").split(",");
        if (!types.some(function (t) { return event.type.indexOf(t) === 0; })) { return; }
        var minMs = Number(el.getAttribute("data-live-min-ms")) || 0;
        if (minMs > 0) {
          if (timers.get(el)) { return; }
          var wait = Math.max(150, (fetched.get(el) || 0) + minMs - Date.now());
          timers.set(el, setTimeout(function () { timers.delete(el); refresh(el); }, wait));
          return;
        }
        clearTimeout(timers.get(el));
        timers.set(el, setTimeout(function () { refresh(el); }, 150));
      });
    };
  }
  function refresh(el) {
    if (fetched) { fetched.set(el, Date.now()); }
    fetch(el.getAttribute("data-live-src"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        el.innerHTML = html;
        el.setAttribute("data-refreshed", String(Date.now()));
        el.setAttribute("data-refreshed-by", "stream");
        say(status && status.getAttribute("data-updated"));
      })
      .catch(function () {});
  }

  // Polled parts: the fallback of a live part where EventSource is unavailable (a video being
  // processed follows video.* messages while the stream runs, and is polled otherwise): an
  // element with data-poll-src is fetched again every data-poll-secs seconds (default 10, at
  // least 3) while the page is visible; one that is also a live part (data-live-src) is not polled when the stream runs.
  // With data-poll-while-pending it stops once it holds no [data-pending] element, and says so.
  Array.prototype.forEach.call(document.querySelectorAll("[data-poll-src]"), function (el) {
    if (streaming && el.hasAttribute("data-live-src")) { return; }
    var secs = Math.max(3, Number(el.getAttribute("data-poll-secs")) || 10);
    var whilePending = el.hasAttribute("data-poll-while-pending");
    function pending() { return !whilePending || el.querySelector("[data-pending]"); }
    function tick() {
      if (!pending()) { return; }
      if (document.hidden) { setTimeout(tick, secs * 1000); return; }
      fetch(el.getAttribute("data-poll-src"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          el.innerHTML = html;
          el.setAttribute("data-refreshed", String(Date.now()));
          el.setAttribute("data-refreshed-by", "poll");
          if (!pending()) { say(status && status.getAttribute("data-updated")); }
        })
        .catch(function () {})
        .then(function () { setTimeout(tick, secs * 1000); });
    }
    setTimeout(tick, secs * 1000);
  });

  // Zone map: clicking a zone's shape picks its radio button in the list below the map.
  var map = document.querySelector("svg.map");
  function mark(id) {
    if (!map) { return; }
    Array.prototype.forEach.call(map.querySelectorAll(".zone"), function (shape) {
      shape.classList.toggle("selected", shape.getAttribute("data-zone") === id);
    });
  }
  if (map) {
    map.addEventListener("click", function (e) {
      var shape = e.target.closest ? e.target.closest("[data-zone]") : null;
      if (!shape) { return; }
      var radio = document.getElementById("zone-" + shape.getAttribute("data-zone"));
      if (radio) { radio.checked = true; radio.dispatchEvent(new Event("change", { bubbles: true })); }
    });
    document.addEventListener("change", function (e) {
      if (e.target && e.target.name === "zone_id") { mark(e.target.value); }
    });
    var checked = document.querySelector("input[name=zone_id]:checked");
    if (checked) { mark(checked.value); }
  }

  // "Use my location": the browser's position, named by POST /api/v1/zones/locate.
  var locate = document.getElementById("locate");
  if (locate && navigator.geolocation) {
    locate.hidden = false;
    locate.addEventListener("click", function () {
      var out = document.getElementById("locate-result");
      out.textContent = locate.getAttribute("data-locating");
      navigator.geolocation.getCurrentPosition(function (pos) {
        var lat = pos.coords.latitude, lon = pos.coords.longitude;
        document.getElementById("f-lat").value = String(lat);
        document.getElementById("f-lon").value = String(lon);
        fetch("/api/v1/zones/locate", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ lat: lat, lon: lon })
        }).then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
          .then(function (body) {
            var zone = body.zones && body.zones[0];
            var radio = zone && document.getElementById("zone-" + zone.id);
            if (radio) {
              radio.checked = true; mark(String(zone.id));
              out.textContent = locate.getAttribute("data-located").replace("{zone}", zone.name);
            } else {
              out.textContent = locate.getAttribute("data-missed");
            }
          }).catch(function () { out.textContent = locate.getAttribute("data-missed"); });
      }, function () { out.textContent = locate.getAttribute("data-missed"); }, { timeout: 10000 });
    });
  }

  // Zone editor (admin): with the polygon chosen a click on the map adds a vertex to the
  // text field (one "lat, lon" per line); with the circle it sets the centre. The text fields
  // stay the form's source: the draft drawn on the map follows what they hold.
  var editor = document.querySelector("svg.zone-editor");
  if (editor) {
    var num = function (name) { return Number(editor.getAttribute("data-" + name)); };
    var frame = { minLon: num("min-lon"), maxLat: num("max-lat"), k: num("k"), scale: num("scale"), margin: num("margin") };
    var vertices = document.getElementById("z-polygon");
    var lat = document.getElementById("z-lat"), lon = document.getElementById("z-lon");
    var radius = document.getElementById("z-radius");
    var draftPolygon = document.getElementById("draft-polygon");
    var draftCircle = document.getElementById("draft-circle");
    var clear = document.getElementById("z-clear");
    var circle = function () { var c = document.getElementById("z-shape-circle"); return c && c.checked; };
    var x = function (lo) { return frame.margin + (lo - frame.minLon) * frame.k * frame.scale; };
    var y = function (la) { return frame.margin + (frame.maxLat - la) * frame.scale; };
    var draw = function () {
      var points = vertices.value.split("\n").map(function (line) {
        var parts = line.split(/[\s,;]+/).filter(Boolean).map(Number);
        return parts.length === 2 && parts.every(isFinite) ? x(parts[1]).toFixed(1) + "," + y(parts[0]).toFixed(1) : null;
      }).filter(Boolean);
      draftPolygon.setAttribute("points", circle() ? "" : points.join(" "));
      var la = Number(lat.value.replace(",", ".")), lo = Number(lon.value.replace(",", "."));
      var r = Number(radius.value.replace(",", "."));
      var ok = circle() && lat.value && lon.value && isFinite(la) && isFinite(lo);
      draftCircle.setAttribute("cx", ok ? x(lo).toFixed(1) : "0");
      draftCircle.setAttribute("cy", ok ? y(la).toFixed(1) : "0");
      draftCircle.setAttribute("r", ok ? Math.max(3, (isFinite(r) ? r : 0) / 111320 * frame.scale).toFixed(1) : "0");
    };
    editor.addEventListener("click", function (e) {
      var point = editor.createSVGPoint();
      point.x = e.clientX; point.y = e.clientY;
      var p = point.matrixTransform(editor.getScreenCTM().inverse());
      var la = (frame.maxLat - (p.y - frame.margin) / frame.scale).toFixed(6);
      var lo = (frame.minLon + (p.x - frame.margin) / (frame.k * frame.scale)).toFixed(6);
      if (circle()) {
        lat.value = la; lon.value = lo;
      } else {
        var text = vertices.value.replace(/\s+$/, "");
        vertices.value = (text ? text + "\n" : "") + la + ", " + lo;
      }
      draw();
    });
    [vertices, lat, lon, radius].forEach(function (el) { el.addEventListener("input", draw); });
    document.addEventListener("change", function (e) { if (e.target && e.target.name === "shape") { draw(); } });
    if (clear) {
      clear.hidden = false;
      clear.addEventListener("click", function () { vertices.value = ""; draw(); vertices.focus(); });
    }
    draw();
  }

  // Photo preview before upload.
  var file = document.getElementById("f-photo");
  var preview = document.getElementById("photo-preview");
  if (file && preview) {
    file.addEventListener("change", function () {
      preview.textContent = "";
      var f = file.files && file.files[0];
      if (!f) { return; }
      var isVideo = f.type.indexOf("video/") === 0;
      var node = document.createElement(isVideo ? "video" : "img");
      node.src = URL.createObjectURL(f);
      if (isVideo) { node.controls = true; } else { node.alt = preview.getAttribute("data-label") + ": " + f.name; }
      preview.appendChild(node);
    });
  }
})();
