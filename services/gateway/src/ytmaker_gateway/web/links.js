// Artifact links (docs/decisions/0134, 0136). A <video> or an <img> cannot send the token: it
// loads a link whose grant opens that one artifact until `expires_at`, checked on every
// request, a playing video's Range requests too. The page asks for the next link a margin
// before then, and at once when an element fails to load or a download is clicked with a
// stale link (timers come late in a background tab or after sleep); the video stays where it
// was, paused or playing.
const MARGIN_MS = 5 * 60_000; // renew this long before expiry, or a fifth of a shorter life
const FLOOR_MS = 5_000; // never sooner: a clock ahead of the gateway's must not make a loop
const RETRY_MS = 15_000; // after a failure that may pass (no answer, 429, 5xx)
const FRESH_MS = 1_000; // a download starts on a link valid for at least this long

/** Keeps artifact `name`'s link on `elements` (a <video>, an <img>, an <a download>). */
export function keepLinked(page, name, elements) {
  let link = null; // {url, expiresAt}
  let timer = null;
  let asking = null;
  const video = elements.find((el) => el instanceof HTMLVideoElement);
  let place = null; // where to put the video back once the new link has loaded

  const renew = () => (asking ??= ask().finally(() => (asking = null)));

  async function ask() {
    clearTimeout(timer);
    try {
      const next = await page.rest.artifactLink(page.taskId, name);
      const changed = next.url !== link?.url; // the plain path without a signing secret
      link = { url: next.url, expiresAt: next.expiresAt.getTime() };
      for (const el of elements) {
        el.removeAttribute("title");
        if (changed) show(el, link.url);
      }
      const life = link.expiresAt - Date.now();
      timer = setTimeout(renew, Math.max(FLOOR_MS, life - Math.min(MARGIN_MS, life / 5)));
      return true;
    } catch (err) {
      for (const el of elements) el.title = `no ${name}: ${err.code}: ${err.message}`;
      const passing = !err.status || err.status >= 500 || err.status === 429;
      if (!page.refused(err, renew) && passing) timer = setTimeout(renew, RETRY_MS);
      return false;
    }
  }

  function show(el, url) {
    if (el instanceof HTMLAnchorElement) el.href = url;
    else if (el === video && video.currentSrc) {
      // A new src loads the video again from the start, paused: keep its place for then.
      place ??= { at: video.currentTime, playing: !video.paused && !video.ended, rate: video.playbackRate };
      video.src = url;
    } else el.src = url;
  }

  video?.addEventListener("loadedmetadata", () => {
    if (!place) return;
    video.currentTime = place.at;
    video.playbackRate = place.rate;
    if (place.playing) video.play().catch(() => undefined);
    place = null;
  });
  for (const el of elements) {
    if (el instanceof HTMLAnchorElement) {
      el.addEventListener("click", (event) => {
        // A click of our own (after the renewal) goes through, fresh or not.
        if (!event.isTrusted || (link && Date.now() < link.expiresAt - FRESH_MS)) return;
        event.preventDefault();
        renew().then((renewed) => renewed && el.click());
      });
    } else {
      // An expired grant fails the load (401); a link failing for another reason (404) must
      // not be asked for again and again. The element loads the answer even when it is the
      // link it failed on (asked again within the grant's second, or a plain path).
      let renewedOnError = -Infinity;
      el.addEventListener("error", () => {
        if (!link || Date.now() - renewedOnError < FLOOR_MS) return;
        renewedOnError = Date.now();
        const failed = el.src;
        renew().then((renewed) => renewed && el.src === failed && show(el, link.url));
      });
    }
  }
  renew();
}
