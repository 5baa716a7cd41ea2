/* archmon dashboard: live room cards over SSE and the overview's instant filter. No inline script (CSP). */
(function () {
  'use strict';
  var grid = document.getElementById('rooms');
  var filterInput = document.getElementById('room-filter');

  function applyFilter() {
    if (!filterInput || !grid) { return; }
    var q = filterInput.value.trim().toLowerCase();
    grid.querySelectorAll('.card').forEach(function (card) {
      card.hidden = q !== '' && (card.dataset.name || '').indexOf(q) < 0;
    });
  }
  if (filterInput) { filterInput.addEventListener('input', applyFilter); }

  function replaceCard(room, html) {
    var old = document.getElementById('room-' + room);
    if (!old) { return; }
    var holder = document.createElement('template');
    holder.innerHTML = html.trim();
    var fresh = holder.content.firstElementChild;
    if (!fresh) { return; }
    old.replaceWith(fresh);
    fresh.classList.add('flash');
    applyFilter();
    document.body.dataset.liveUpdates = String((Number(document.body.dataset.liveUpdates) || 0) + 1);
  }

  if (window.EventSource && document.querySelector('.card[data-room]')) {
    var source = new EventSource('/events');
    source.addEventListener('hello', function () { document.body.dataset.live = 'on'; });
    source.addEventListener('room', function (event) {
      var data = JSON.parse(event.data);
      replaceCard(data.room, data.html);
    });
    source.addEventListener('logout', function () {  // logged out, disabled or role changed: to the login page
      source.close();
      document.body.dataset.live = 'off';
      window.location.reload();
    });
    source.onerror = function () { document.body.dataset.live = 'reconnecting'; };
  }
})();
