// The dashboard's live feed: new events of the log over Server-Sent Events
// (GET /api/events/live, authenticated by the session cookie). Text only: nothing from the
// server is ever parsed as HTML.
(function () {
  "use strict";
  var feed = document.getElementById("live-feed");
  var status = document.getElementById("live-status");
  if (!feed || typeof EventSource === "undefined") {
    return;
  }
  var MAX_ITEMS = 100;
  var source = new EventSource("/api/events/live");
  source.onopen = function () {
    if (status) { status.textContent = "live"; }
  };
  source.onerror = function () {
    if (status) { status.textContent = "reconnecting…"; }
  };
  source.onmessage = function (message) {
    var event;
    try {
      event = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    var item = document.createElement("li");
    item.className = "live-event";
    item.dataset.type = event.type;
    item.textContent = "#" + event.position + " " + event.occurred_at + " " + event.type +
      " " + event.stream + " by " + event.actor;
    feed.insertBefore(item, feed.firstChild);
    while (feed.childNodes.length > MAX_ITEMS) {
      feed.removeChild(feed.lastChild);
    }
  };
})();
