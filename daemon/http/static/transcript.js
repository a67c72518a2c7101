// A transcript with its audio: a click on a line plays from there; while the audio plays,
// the line under the playhead is marked aria-current="true" and kept in view; Space plays
// and pauses, the arrow keys move between lines; ?t=SECONDS opens at that moment.
"use strict";
(function () {
  const audio = document.getElementById("player");
  const lines = Array.from(document.querySelectorAll("#lines .line"));
  const starts = lines.map((l) => parseFloat(l.dataset.start));
  let current = -1;

  // the line at time t: the last one starting at or before t (binary search)
  function lineAt(t) {
    let lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= t + 0.01) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  function inView(el) {
    const box = el.getBoundingClientRect();
    const top = document.getElementById("player-box").getBoundingClientRect().bottom;
    return box.top >= top && box.bottom <= window.innerHeight;
  }

  function mark(index, focus) {
    if (index === current) return;
    if (current >= 0) { lines[current].removeAttribute("aria-current"); lines[current].tabIndex = -1; }
    current = index;
    if (index < 0) return;
    const line = lines[index];
    line.setAttribute("aria-current", "true");
    line.tabIndex = 0;
    if (focus) line.focus({preventScroll: true});
    if (!inView(line)) line.scrollIntoView({block: "center"});
  }

  function seek(index, play) {
    if (index < 0 || index >= lines.length) return;
    audio.currentTime = starts[index];
    mark(index, true);
    if (play) audio.play().catch(() => {});
  }

  document.getElementById("lines").addEventListener("click", (event) => {
    const line = event.target.closest(".line");
    if (line) seek(lines.indexOf(line), true);
  });

  const timeline = document.getElementById("timeline");
  if (timeline) {
    timeline.addEventListener("click", (event) => {
      const box = timeline.getBoundingClientRect();
      const total = parseFloat(document.getElementById("player-box").dataset.duration) || 0;
      const t = ((event.clientX - box.left) / box.width) * total;
      audio.currentTime = Math.max(0, t);
      mark(lineAt(t), false);
    });
  }

  audio.addEventListener("timeupdate", () => mark(lineAt(audio.currentTime), false));
  audio.addEventListener("seeked", () => mark(lineAt(audio.currentTime), false));

  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select, button, a, audio");
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === " ") {
      event.preventDefault();
      if (audio.paused) audio.play().catch(() => {}); else audio.pause();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const from = current >= 0 ? current : lineAt(audio.currentTime);
      seek(Math.max(0, from + (event.key === "ArrowDown" ? 1 : -1)), !audio.paused);
    }
  });

  // ?t=SECONDS: open at that moment
  const start = parseFloat(document.getElementById("player-box").dataset.start);
  if (start > 0) {
    const go = () => { audio.currentTime = start; mark(lineAt(start), true); };
    if (audio.readyState >= 1) go(); else audio.addEventListener("loadedmetadata", go, {once: true});
    mark(lineAt(start), true);
  } else if (lines.length) {
    lines[0].tabIndex = 0;
  }
  window.transcribdReadyAt = performance.now();  // ms since navigation began
  document.body.dataset.ready = "true";
})();
