"use strict";
// The post page (issue 18): a live character count for a reply, against the platform's
// limit (data-limit), and "copy reply and open the post" where no reply account answers the
// post. No inline scripts: the page's Content-Security-Policy forbids them.
(function () {
  // Characters as people count them: code points, not UTF-16 units (an emoji is one).
  function length(text) {
    return Array.from(text.trim()).length;
  }

  function counter(area, output) {
    const limit = Number(area.dataset.limit);
    const update = () => {
      const used = length(area.value);
      output.textContent = `${used} / ${limit}`;
      const over = used > limit;
      output.classList.toggle("over", over);
      if (over) area.setAttribute("aria-invalid", "true");
      else area.removeAttribute("aria-invalid");
    };
    area.addEventListener("input", update);
    update();
  }

  // The clipboard API needs a secure context (https or localhost); elsewhere the selected
  // text is copied the old way.
  function copy(area) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(area.value);
    }
    area.select();
    return document.execCommand("copy") ? Promise.resolve() : Promise.reject(new Error("copy"));
  }

  function copier(control) {
    const area = document.getElementById(control.dataset.copy);
    const said = document.getElementById("copy-done");
    // no preventDefault: the link itself opens the post in a new tab (noopener noreferrer),
    // so it works without this script too
    control.addEventListener("click", () => {
      copy(area).then(
        () => { if (said) said.textContent = "Reply copied: paste it into the post's reply box."; },
        () => { if (said) said.textContent = "Could not copy: select the text and copy it yourself."; },
      );
    });
  }

  function start() {
    for (const [areaId, outputId] of [["reply-text", "reply-count"], ["copy-text", "copy-count"]]) {
      const area = document.getElementById(areaId);
      const output = document.getElementById(outputId);
      if (area && output && area.dataset.limit) counter(area, output);
    }
    document.querySelectorAll("[data-copy]").forEach(copier);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
