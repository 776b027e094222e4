// Refresh the page's live part (#live[data-refresh=seconds]) by fetching this URL with ?fragment=1;
// at once, too, after an operator's button has acted ("warden:acted").
(function () {
  const live = document.getElementById("live");
  const stamp = document.getElementById("refreshed");
  if (!live || !live.dataset.refresh) return;
  const every = Number(live.dataset.refresh) * 1000;
  async function load() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    try {
      const answer = await fetch(url, { credentials: "same-origin" });
      if (answer.ok) {
        live.innerHTML = await answer.text();
        stamp.textContent = "updated " + new Date().toLocaleTimeString();
      } else {
        stamp.textContent = "refresh failed: HTTP " + answer.status;
      }
    } catch (err) {
      stamp.textContent = "refresh failed: Warden unreachable";
    }
  }
  async function refresh() {
    if (!document.hidden) await load();
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
  document.addEventListener("warden:acted", load);
})();

// Operators' buttons (templates show them under `{% if is_operator %}`):
//   <button type="button" data-post="/api/..." data-body='{"json": 1}' data-done="what it did"
//           data-confirm="Ask first?" data-method="DELETE">Label</button>
// POSTs the body (default {}) to data-post (or sends data-method, a DELETE without a body) from this page (same origin: Warden refuses another site's),
// says what came of it in #action-result ("done ... by NAME", or the error), then refreshes the page's
// live part at once.
(function () {
  const result = document.getElementById("action-result");
  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-post]");
    if (!button || button.disabled) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    let text;
    try {
      const method = (button.dataset.method || "POST").toUpperCase();
      const answer = await fetch(button.dataset.post, {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: method === "DELETE" ? undefined : button.dataset.body || "{}",
      });
      let data = {};
      try {
        data = await answer.json();
      } catch (err) {
        data = {};
      }
      const by = data.by || data.retried_by;
      text = answer.ok
        ? (button.dataset.done || "done") + (by ? " by " + by : "")
        : "refused: " + (data.error || "HTTP " + answer.status);
    } catch (err) {
      text = "failed: Warden unreachable";
    }
    if (result) result.textContent = text;
    button.disabled = false;
    document.dispatchEvent(new Event("warden:acted"));
  });
})();
