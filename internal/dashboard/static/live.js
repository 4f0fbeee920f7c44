// Live updates for deploywatch's pages, without a reload:
//
//  - a deploy page follows the watch's Server-Sent Events and, at each,
//    fetches the page's live part again (rendered by the server);
//  - the deploy list fetches its rows again every few seconds while the
//    tab is visible.
//
// Nothing here builds HTML from data: the server renders and escapes it.
(function () {
  'use strict';

  var KINDS = ['started', 'baseline', 'phase_started', 'phase_ended', 'progress', 'measured', 'breached',
    'note', 'resumed', 'rollback_started', 'rollback_done', 'rollback_failed', 'verdict'];

  // swap replaces el's content with html, keeping the focus on the element
  // (by id) or the link (by href) that had it.
  function swap(el, html) {
    var active = document.activeElement;
    var key = null;
    if (active && el.contains(active)) {
      if (active.id) { key = '#' + CSS.escape(active.id); }
      else if (active.getAttribute('href')) { key = '[href="' + CSS.escape(active.getAttribute('href')) + '"]'; }
    }
    var openDetails = [];
    el.querySelectorAll('details[open] > summary').forEach(function (s) { openDetails.push(s.textContent); });
    el.innerHTML = html;
    el.querySelectorAll('details > summary').forEach(function (s) {
      if (openDetails.indexOf(s.textContent) >= 0) { s.parentNode.open = true; }
    });
    if (key) {
      var again = el.querySelector(key);
      if (again) { again.focus({ preventScroll: true }); }
    }
  }

  function fetchInto(el, url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (resp) {
        if (!resp.ok) { throw new Error('HTTP ' + resp.status); }
        return resp.text();
      })
      .then(function (html) { swap(el, html); });
  }

  function followDeploy(el) {
    var fragment = el.getAttribute('data-live-fragment');
    var announce = document.getElementById('announce');
    var timer = null;
    var busy = false;
    var again = false;
    var verdict = verdictOf(el);

    function verdictOf(root) {
      var head = root.querySelector('[data-verdict]');
      return head ? head.getAttribute('data-verdict') : '';
    }

    function refresh() {
      timer = null;
      if (busy) { again = true; return; }
      busy = true;
      fetchInto(el, fragment).then(function () {
        var now = verdictOf(el);
        if (now !== verdict && now !== 'in_progress' && announce) {
          announce.textContent = 'Verdict: ' + now;
        }
        verdict = now;
      }).catch(function () { /* the next event tries again */ }).then(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
    }

    function schedule() {
      if (timer === null) { timer = setTimeout(refresh, 150); }
    }

    var source = new EventSource(el.getAttribute('data-live-events'));
    KINDS.forEach(function (kind) { source.addEventListener(kind, schedule); });
    source.addEventListener('end', function () {
      source.close();
      schedule();
    });
  }

  function pollRows(el) {
    var url = el.getAttribute('data-live-poll');
    setInterval(function () {
      if (document.visibilityState !== 'visible') { return; }
      fetchInto(el, url).catch(function () { /* try again at the next tick */ });
    }, 5000);
  }

  function start() {
    document.querySelectorAll('[data-live-events]').forEach(followDeploy);
    document.querySelectorAll('[data-live-poll]').forEach(pollRows);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
