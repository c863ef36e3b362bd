/* hexcast console: swap in live HTML fragments (elements with data-poll) without reloading the
   page, and submit the tenant filter when it changes. No build step, no dependency. */
(function () {
  "use strict";

  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-every") || "2000", 10);
    var swaps = 0;

    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url, {credentials: "same-origin", cache: "no-store"})
        .then(function (answer) {
          if (answer.status === 401) { window.location.assign("/console/login"); return null; }
          return answer.ok ? answer.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            el.innerHTML = html;
            swaps += 1;
            el.setAttribute("data-swaps", String(swaps));
          }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }

  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
