// Refresh the page's live part (#live[data-refresh=seconds]) by fetching this URL with ?fragment=1.
(function () {
  const live = document.getElementById("live");
  const stamp = document.getElementById("refreshed");
  if (!live || !live.dataset.refresh) return;
  const every = Number(live.dataset.refresh) * 1000;
  async function refresh() {
    if (!document.hidden) {
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
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
