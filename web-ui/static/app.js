// paas dashboard: the only script, for the two views that update live (a deploy's log and
// the app's logs), over server-sent events. Lines arrive as JSON strings.
"use strict";

// What a terminal shows for a line holding carriage returns: each `\r` moves back to the
// start, and what follows overwrites what was there.
function asTerminal(line) {
  let shown = "";
  for (const part of line.split("\r")) {
    shown = part + shown.slice(part.length);
  }
  return shown;
}

// A log line is `TIME SOURCE: output`; the output's `\r`s redraw the output, not the prefix.
function logLine(line) {
  const cut = line.indexOf(": ");
  return cut < 0 ? asTerminal(line) : line.slice(0, cut + 2) + asTerminal(line.slice(cut + 2));
}

function append(pre, text) {
  const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  pre.appendChild(document.createTextNode(text + "\n"));
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

// The deploy log: the page holds the lines so far; the stream goes on from the next one
// (and, on a reconnect, from the last one seen: the browser sends Last-Event-ID).
const deployLog = document.getElementById("deploy-log");
if (deployLog && deployLog.dataset.done !== "true") {
  // The server numbers the lines (a long log is cut in the middle): go on from its count.
  const source = new EventSource(deployLog.dataset.stream + "?from=" + deployLog.dataset.from);
  source.onmessage = (event) => append(deployLog, asTerminal(JSON.parse(event.data)));
  source.addEventListener("done", (event) => {
    source.close();
    const outcome = document.getElementById("deploy-outcome");
    if (outcome) {
      outcome.textContent = event.data;
      outcome.className = event.data.startsWith("Failed") ? "error" : "notice";
    }
  });
}

// The app's logs: live, filtered by process type; pausing keeps the lines that arrive and
// shows them on resume.
const appLog = document.getElementById("app-log");
if (appLog) {
  const filter = document.getElementById("log-filter");
  const pause = document.getElementById("log-pause");
  const status = document.getElementById("log-status");
  let source = null;
  let paused = false;
  let held = [];
  const connect = () => {
    if (source) source.close();
    appLog.textContent = "";
    const ps = filter.value ? "?ps=" + encodeURIComponent(filter.value) : "";
    source = new EventSource(appLog.dataset.stream + ps);
    // Each (re)connection starts with the recent history again: show it once.
    source.onopen = () => {
      appLog.textContent = "";
      held = [];
      status.textContent = paused ? "paused" : "live";
    };
    source.onerror = () => { status.textContent = "reconnecting…"; };
    source.onmessage = (event) => {
      const line = logLine(JSON.parse(event.data));
      if (paused) {
        held.push(line);
        status.textContent = "paused, " + held.length + " new lines";
      } else {
        append(appLog, line);
      }
    };
  };
  filter.addEventListener("change", connect);
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      held.forEach((line) => append(appLog, line));
      held = [];
      status.textContent = "live";
    } else {
      status.textContent = "paused";
    }
  });
  connect();
}
