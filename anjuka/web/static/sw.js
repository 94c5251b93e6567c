/*
 * Anjuka patrol service worker (our own code), served as /patrol/sw.js so that
 * its scope is /patrol/. It keeps the patrol page and its assets so that the
 * page opens with no network; the offline checks themselves are patrol.js's.
 * Network first: online the page is always the registry's latest; the cache
 * answers only when the network does not. API calls are never cached.
 */
"use strict";

const CACHE = "anjuka-patrol-v1";
const PAGE = new URL("./", self.location).pathname; // the patrol page, /patrol/
const ASSETS = ["/assets/style.css", "/assets/patrol.css", "/assets/patrol.js", "/assets/patrol-icon.svg"];

async function keepPage(cache) {
  const response = await fetch(PAGE, { credentials: "same-origin" });
  if (response.ok && !response.redirected) await cache.put(PAGE, response);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(ASSETS);
      await keepPage(cache).catch(() => {});
      await self.skipWaiting();
    })()
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })()
  );
});

function kept(url, request) {
  if (url.origin !== self.location.origin || request.method !== "GET") return false;
  return ASSETS.includes(url.pathname) || (request.mode === "navigate" && url.pathname.startsWith(PAGE));
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (!kept(url, request)) return; // the network alone: the API, forms, other pages
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        // Only the patrol page itself and the assets are kept (not a sign-in page it redirected to).
        const key = request.mode === "navigate" ? PAGE : url.pathname;
        if (response.ok && !response.redirected && (key !== PAGE || url.pathname === PAGE)) {
          await cache.put(key, response.clone());
        }
        return response;
      } catch (error) {
        const cached = await cache.match(request.mode === "navigate" ? PAGE : url.pathname);
        if (cached) return cached;
        throw error;
      }
    })()
  );
});
