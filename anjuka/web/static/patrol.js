/*
 * Anjuka patrol page, offline half (our own code; no library).
 *
 * Online, the check form posts to the registry as any form does. Offline
 * (navigator.onLine false), this script answers instead, with the rules of
 * anjuka-patrol (cardreader/offline.py, docs/card-format.md section 9):
 *
 * - it keeps the signed offline bundle of GET /api/v1/offline-bundle (a full
 *   bundle and its deltas) in IndexedDB, pins the keys of the first one, and
 *   verifies every bundle's Ed25519 signature (WebCrypto) over its canonical
 *   JSON before using it;
 * - it refuses to answer from a bundle past its expiry;
 * - a card number: revoked when the bundle lists it, otherwise valid (the
 *   registry confirms on upload); a chip record: verified for its UID under
 *   the bundle's keys (else forged), revoked if listed, unknown if withdrawn,
 *   expired when its validity ended before today in the registry's zone
 *   named by the bundle, otherwise valid;
 * - every offline check is queued in IndexedDB and uploaded as
 *   POST /api/v1/verifications {"offline": true, "checked_at", "client_id"}
 *   when the network is back; the registry records a client_id once.
 */
(function () {
  "use strict";

  const root = document.getElementById("patrol");
  if (!root) return;
  const words = JSON.parse(document.getElementById("patrol-words").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const userId = root.dataset.user;

  const FORMAT = 2;
  const BUNDLE_CONTEXT = "Anjuka offline bundle v1\u0000";
  const RECORD_CONTEXT = "Anjuka card record v1\u0000";
  const DEFAULT_TIMEZONE = "Asia/Shanghai";
  const MAX_DELTAS = 30;
  const RECORD_SIZE = 113;
  const UNSIGNED_SIZE = 49;
  const MAX_UID_SIZE = 32;
  const MAX_DAYS = 2932896; // 9999-12-31, the last day a record's date can name
  const RETRYABLE = [401, 403, 408, 429];
  const PAGE_CACHE = "anjuka-patrol-v1"; // sw.js's cache

  const $ = (id) => document.getElementById(id);
  const fill = (text, values) =>
    text.replace(/%\((\w+)\)s/g, (_, name) => (name in values ? String(values[name]) : ""));

  class BundleError extends Error {}
  class BundleExpired extends BundleError {}

  // -- storage: IndexedDB ------------------------------------------------------

  function openStore() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open("anjuka-patrol", 1);
      request.onupgradeneeded = () => {
        request.result.createObjectStore("state");
        request.result.createObjectStore("queue", { keyPath: "client_id" });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }

  async function inStore(name, mode, work) {
    const db = await openStore();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(name, mode);
      const request = work(tx.objectStore(name));
      tx.oncomplete = () => {
        db.close();
        resolve(request ? request.result : undefined);
      };
      tx.onerror = tx.onabort = () => {
        db.close();
        reject(tx.error);
      };
    });
  }

  const getState = (key) => inStore("state", "readonly", (s) => s.get(key));
  const putState = (key, value) => inStore("state", "readwrite", (s) => s.put(value, key));
  /* This user's queued inspections, in the order they were made (the registry judges them so). */
  const queued = async () =>
    (await inStore("queue", "readonly", (s) => s.getAll()))
      .filter((e) => e.user === userId)
      .sort((a, b) => (a.checked_at < b.checked_at ? -1 : a.checked_at > b.checked_at ? 1 : 0));
  const enqueue = (entry) => inStore("queue", "readwrite", (s) => s.put(entry));
  const dequeue = (id) => inStore("queue", "readwrite", (s) => s.delete(id));

  // -- bytes -------------------------------------------------------------------

  const ascii = (text) => new TextEncoder().encode(text);

  function fromBase64(text) {
    const raw = atob(text);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function fromHex(text) {
    const clean = String(text || "").replace(/[\s:-]/g, "").toLowerCase();
    if (!/^(?:[0-9a-f]{2})*$/.test(clean)) return null;
    const out = new Uint8Array(clean.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(2 * i, 2), 16);
    return out;
  }

  const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  // -- the bundle: canonical JSON, signatures, the revocation list --------------

  /* Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True). */
  function canonical(value) {
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value !== null && typeof value === "object") {
      const keys = Object.keys(value).sort();
      return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  const escapeNonAscii = (text) =>
    text.replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));

  function signedBytes(bundle) {
    const unsigned = Object.assign({}, bundle);
    delete unsigned.signature;
    return ascii(BUNDLE_CONTEXT + escapeNonAscii(canonical(unsigned)));
  }

  async function ed25519Verify(publicKey, signature, data) {
    try {
      const key = await crypto.subtle.importKey("raw", fromBase64(publicKey), { name: "Ed25519" }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, data);
    } catch (error) {
      return false;
    }
  }

  function ownKeys(bundle) {
    const keys = {};
    for (const entry of bundle.keys) {
      if (entry.algorithm !== "Ed25519") throw new BundleError("unsupported key algorithm");
      keys[String(entry.id)] = entry.public_key;
    }
    return keys;
  }

  function checkFormat(bundle) {
    if (!bundle || bundle.format !== FORMAT) throw new BundleError("format");
    for (const name of ["keys", "revoked", "withdrawn", "cursor", "issued_at", "expires_at", "signature"]) {
      if (!(name in bundle)) throw new BundleError("missing " + name);
    }
    if (!Array.isArray(bundle.revoked) || !bundle.revoked.every((n) => typeof n === "string")) {
      throw new BundleError("revoked");
    }
    if (!Array.isArray(bundle.withdrawn) || !bundle.withdrawn.every((d) => /^[0-9a-f]{64}$/.test(d))) {
      throw new BundleError("withdrawn");
    }
  }

  async function checkSignature(bundle, trusted) {
    const key = trusted[String(bundle.signed_by)];
    let signature;
    try {
      signature = fromBase64(bundle.signature);
    } catch (error) {
      throw new BundleError("signature");
    }
    if (!key || !(await ed25519Verify(key, signature, signedBytes(bundle)))) {
      throw new BundleError("the bundle's signature does not verify");
    }
  }

  /* A full bundle then its deltas, each verified, merged (RevocationList.from_bundles). */
  async function revocationList(chain, trusted) {
    let state = null;
    for (const bundle of chain) {
      checkFormat(bundle);
      if (state === null) {
        if (bundle.since !== null && bundle.since !== undefined) throw new BundleError("chain");
        await checkSignature(bundle, trusted || ownKeys(bundle));
        state = {
          keys: ownKeys(bundle),
          revoked: new Set(bundle.revoked),
          withdrawn: new Set(bundle.withdrawn),
          timezone: bundle.timezone || DEFAULT_TIMEZONE,
        };
      } else {
        if (bundle.since !== state.cursor) throw new BundleError("chain");
        await checkSignature(bundle, state.keys);
        Object.assign(state.keys, ownKeys(bundle));
        bundle.revoked.forEach((n) => state.revoked.add(n));
        bundle.withdrawn.forEach((d) => state.withdrawn.add(d));
        state.timezone = bundle.timezone || state.timezone;
      }
      state.cursor = bundle.cursor;
      state.issuedAt = new Date(bundle.issued_at);
      state.expiresAt = new Date(bundle.expires_at);
    }
    if (state === null) throw new BundleError("no bundle");
    return state;
  }

  async function heldList() {
    const chain = (await getState("bundles")) || [];
    if (!chain.length) return null;
    return revocationList(chain, (await getState("trust")) || null);
  }

  async function addBundle(bundle) {
    const trusted = (await getState("trust")) || null;
    let chain;
    if (bundle.since === null || bundle.since === undefined) {
      checkFormat(bundle);
      await checkSignature(bundle, trusted || ownKeys(bundle));
      chain = [bundle];
    } else {
      chain = ((await getState("bundles")) || []).concat([bundle]);
    }
    const state = await revocationList(chain, trusted);
    await putState("bundles", chain);
    await putState("trust", Object.assign({}, trusted || {}, state.keys));
    return state;
  }

  async function fetchBundle() {
    const chain = (await getState("bundles")) || [];
    let url = root.dataset.bundleUrl;
    const current = chain.every((b) => b.format === FORMAT);
    if (chain.length && current && chain.length <= MAX_DELTAS) {
      url += "?since=" + encodeURIComponent(chain[chain.length - 1].cursor);
    }
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("the registry answered " + response.status);
    return addBundle(await response.json());
  }

  function checkFresh(state, now) {
    if (!(now < state.expiresAt)) throw new BundleExpired("expired");
  }

  // -- checks ------------------------------------------------------------------

  /* ISO/IEC 7064 MOD 37,36 over the 8 digits (cardreader/cardno.py). */
  function cardCheckChar(digits) {
    const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let product = 36;
    for (const c of digits) {
      const total = (product + Number(c)) % 36 || 36;
      product = (total * 2) % 37;
    }
    return alphabet[(37 - product) % 36];
  }

  function isCardNo(text) {
    const match = /^AJ([0-9]{8})([0-9A-Z])$/.exec(text);
    return match !== null && cardCheckChar(match[1]) === match[2];
  }

  function checkCardNo(cardNo, state) {
    if (state.revoked.has(cardNo)) return { result: "revoked", reason: "listed", card_no: cardNo };
    return { result: "valid", reason: "not_listed", card_no: cardNo };
  }

  function dayOf(days) {
    return new Date(days * 86400000).toISOString().slice(0, 10);
  }

  function text(bytes) {
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    const body = bytes.slice(0, end);
    if (!body.length || !body.every((b) => b >= 0x21 && b <= 0x7e)) throw new Error("text");
    return String.fromCharCode(...body);
  }

  /* The 113-byte record (cardreader/record.py); throws when it does not follow the layout. */
  function decodeRecord(bytes) {
    if (bytes.length !== RECORD_SIZE) throw new Error("size");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes[0] !== 0x41 || bytes[1] !== 0x4a || bytes[2] !== 1) throw new Error("magic");
    const validFrom = view.getUint32(39);
    const validUntil = view.getUint32(43);
    if (validFrom > MAX_DAYS || validUntil > MAX_DAYS || validUntil < validFrom) throw new Error("dates");
    return {
      card_no: text(bytes.slice(3, 19)),
      residence_id: view.getBigUint64(19).toString(),
      area_code: text(bytes.slice(27, 39)),
      valid_until: dayOf(validUntil),
      key_id: view.getUint16(47),
    };
  }

  function todayIn(zone, now) {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    }).formatToParts(now);
    const part = (type) => parts.find((p) => p.type === type).value;
    return part("year") + "-" + part("month") + "-" + part("day");
  }

  async function checkChip(recordHex, uidHex, state, now) {
    const record = fromHex(recordHex);
    const uid = fromHex(uidHex);
    if (!record.length) return { result: "unknown", reason: "blank" };
    let decoded;
    try {
      decoded = decodeRecord(record);
      if (uid.length < 1 || uid.length > MAX_UID_SIZE) throw new Error("uid");
    } catch (error) {
      return { result: "forged", reason: "not_a_record" };
    }
    const key = state.keys[String(decoded.key_id)];
    if (!key) return { result: "forged", reason: "unknown_key" };
    const signed = concat(ascii(RECORD_CONTEXT), Uint8Array.of(uid.length), uid, record.slice(0, UNSIGNED_SIZE));
    if (!(await ed25519Verify(key, record.slice(UNSIGNED_SIZE), signed))) {
      return { result: "forged", reason: "bad_signature" };
    }
    const facts = { card_no: decoded.card_no, valid_until: decoded.valid_until };
    if (state.revoked.has(decoded.card_no)) return Object.assign({ result: "revoked", reason: "listed" }, facts);
    const digest = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", record)));
    if (state.withdrawn.has(digest)) return Object.assign({ result: "unknown", reason: "never_activated" }, facts);
    if (decoded.valid_until < todayIn(state.timezone, now)) return Object.assign({ result: "expired", reason: null }, facts);
    return Object.assign({ result: "valid", reason: null }, facts);
  }

  // -- the page ----------------------------------------------------------------

  const form = $("check-form");
  const offlineResult = $("offline-result");
  /* A time as the server's pages write it (YYYY-MM-DD HH:MM), in the registry's zone. */
  function when(date, zone) {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(date);
    const part = (type) => parts.find((p) => p.type === type).value;
    return part("year") + "-" + part("month") + "-" + part("day") + " " + part("hour") + ":" + part("minute");
  }

  function showKind() {
    const chosen = form.querySelector('input[name="kind"]:checked');
    const kind = chosen ? chosen.value : "card_no";
    form.querySelectorAll(".group").forEach((group) => {
      group.hidden = group.dataset.kind !== kind;
    });
    return kind;
  }

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => node.setAttribute(name, value));
    children.forEach((child) => node.append(child));
    return node;
  }

  function clearResults() {
    const online = $("result");
    if (online) online.hidden = true;
    const refusal = $("refusal");
    if (refusal) refusal.remove();
    offlineResult.replaceChildren();
  }

  function showRefusal(message) {
    clearResults();
    offlineResult.append(element("p", { class: "notice bad", role: "alert", id: "offline-refusal" }, message));
    offlineResult.hidden = false;
  }

  function showAnswer(answer, state, now) {
    clearResults();
    const said = words.results[answer.result];
    const heading = element("h2", { id: "offline-heading-result" }, said.headline);
    const verdict = element("div", { class: "verdict " + answer.result },
      element("span", { class: "symbol", "aria-hidden": "true" }, said.symbol), heading);
    offlineResult.setAttribute("data-result", answer.result);
    offlineResult.setAttribute("aria-labelledby", "offline-heading-result");
    offlineResult.append(verdict, element("p", { class: "advice" }, said.advice));
    if (answer.reason && words.reasons[answer.reason]) {
      offlineResult.append(element("p", { class: "why" }, words.reasons[answer.reason]));
    }
    const facts = element("dl", { class: "facts" });
    if (answer.card_no) facts.append(element("dt", {}, words.card_no), element("dd", { class: "numbers" }, answer.card_no));
    if (answer.valid_until) facts.append(element("dt", {}, words.valid_until), element("dd", { class: "numbers" }, answer.valid_until));
    facts.append(element("dt", {}, words.checked_at), element("dd", { class: "numbers" }, when(now, state.timezone)));
    const note = fill(words.offline_note, { issued: when(state.issuedAt, state.timezone) });
    offlineResult.append(facts, element("p", { class: "hint" }, note));
    offlineResult.hidden = false;
  }

  function clientId() {
    return "web-" + toHex(crypto.getRandomValues(new Uint8Array(16)));
  }

  async function checkOffline() {
    const kind = showKind();
    const now = new Date();
    let state;
    try {
      state = await heldList();
    } catch (error) {
      showRefusal(words.bundle_bad);
      return;
    }
    if (state === null) return showRefusal(words.bundle_none);
    try {
      checkFresh(state, now); // refuse before judging anything
    } catch (error) {
      showRefusal(fill(words.refused_expired, { expires: when(state.expiresAt, state.timezone) }));
      return;
    }
    const entry = { client_id: clientId(), user: userId, checked_at: now.toISOString(), kind: kind };
    let answer;
    if (kind === "card_no") {
      const cardNo = $("card_no").value.trim().toUpperCase();
      if (!isCardNo(cardNo)) return showRefusal(words.invalid_card_no);
      answer = checkCardNo(cardNo, state);
      entry.card_no = cardNo;
    } else if (kind === "chip") {
      const uid = fromHex($("uid").value);
      const record = fromHex($("record").value);
      if (!uid || !uid.length || !record) return showRefusal(words.bad_hex);
      answer = await checkChip(toHex(record), toHex(uid), state, now);
      entry.uid = toHex(uid);
      entry.record = toHex(record);
    } else {
      return showRefusal(words.no_document_offline);
    }
    const dwelling = $("dwelling_id").value.trim();
    const seen = $("observed_headcount").value.trim();
    if (/^[0-9]{1,10}$/.test(dwelling)) entry.dwelling_id = Number(dwelling);
    if (entry.dwelling_id && /^[0-9]{1,4}$/.test(seen)) entry.observed_headcount = Number(seen);
    entry.offline_result = answer.result;
    await enqueue(entry);
    showAnswer(answer, state, now);
    await showQueue();
  }

  // -- the queue ---------------------------------------------------------------

  function uploadBody(entry) {
    const body = {
      offline: true,
      checked_at: entry.checked_at,
      client_id: entry.client_id,
      offline_result: entry.offline_result,
    };
    if (entry.kind === "chip") Object.assign(body, { uid: entry.uid, record: entry.record });
    else body.card_no = entry.card_no;
    if (entry.dwelling_id !== undefined) body.dwelling_id = entry.dwelling_id;
    if (entry.observed_headcount !== undefined) body.observed_headcount = entry.observed_headcount;
    return body;
  }

  let uploading = false;
  let sending = false;

  async function upload() {
    if (uploading || !navigator.onLine) return;
    uploading = true;
    let sent = 0;
    let refused = 0;
    let signIn = false;
    try {
      for (const entry of await queued()) {
        let response;
        try {
          response = await fetch(root.dataset.uploadUrl, {
            method: "POST",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
            body: JSON.stringify(uploadBody(entry)),
          });
        } catch (error) {
          break; // the network went again: the rest waits
        }
        if (response.status === 200 || response.status === 201) {
          await dequeue(entry.client_id);
          sent++;
        } else if (response.status === 401) {
          signIn = true;
          break;
        } else if (RETRYABLE.includes(response.status) || response.status >= 500) {
          break;
        } else {
          // Refused for good (the card number, the dwelling...): kept aside, with why.
          const rejected = (await getState("rejected")) || [];
          rejected.push({ entry: entry, status: response.status, body: await response.text() });
          await putState("rejected", rejected);
          await dequeue(entry.client_id);
          refused++;
        }
      }
    } finally {
      uploading = false;
    }
    await showQueue({ sent: sent, refused: refused, signIn: signIn });
    if (sent) await refreshRecent();
  }

  /* The list of recent inspections, again from the registry (now with the uploaded ones). */
  async function refreshRecent() {
    try {
      const response = await fetch(root.dataset.scope, { credentials: "same-origin" });
      if (!response.ok || response.redirected) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const list = fresh.getElementById("recent");
      if (list) $("recent").replaceWith(document.adoptNode(list));
    } catch (error) {
      // The list stays as it was; the next visit shows it.
    }
  }

  async function showQueue(report) {
    const lines = [];
    const waiting = (await queued()).length;
    if (report && report.sent) lines.push(fill(words.uploaded, { count: report.sent }));
    if (report && report.refused) lines.push(fill(words.rejected, { count: report.refused }));
    if (report && report.signIn) lines.push(words.sign_in_to_upload);
    lines.push(fill(words.queued, { count: waiting }));
    const node = $("queue-state");
    node.textContent = lines.join(" ");
    node.dataset.waiting = String(waiting);
    node.dataset.uploaded = String((Number(node.dataset.uploaded) || 0) + ((report && report.sent) || 0));
  }

  async function showBundle() {
    const node = $("bundle-state");
    let state;
    try {
      state = await heldList();
    } catch (error) {
      node.textContent = words.bundle_bad;
      node.dataset.state = "bad";
      return;
    }
    if (state === null) {
      node.textContent = words.bundle_none;
      node.dataset.state = "none";
    } else if (!(new Date() < state.expiresAt)) {
      node.textContent = fill(words.bundle_expired, { expires: when(state.expiresAt, state.timezone) });
      node.dataset.state = "expired";
    } else {
      node.textContent = fill(words.bundle_ok, {
        issued: when(state.issuedAt, state.timezone),
        expires: when(state.expiresAt, state.timezone),
        revoked: state.revoked.size,
      });
      node.dataset.state = "fresh";
    }
  }

  async function refreshBundle() {
    try {
      await fetchBundle();
    } catch (error) {
      // Kept: the bundle held (if any) still answers until it expires.
    }
    await showBundle();
  }

  function showNetwork(unreachable) {
    const node = $("network");
    const online = navigator.onLine && unreachable !== true;
    node.hidden = false;
    node.className = "network " + (online ? "online" : "offline");
    node.textContent = online ? words.online : navigator.onLine ? words.unreachable : words.offline;
    node.dataset.online = String(online);
  }

  form.querySelectorAll('input[name="kind"]').forEach((radio) => radio.addEventListener("change", showKind));
  form.addEventListener("submit", async (event) => {
    const kind = showKind();
    if (navigator.onLine && (kind === "document" || sending)) return; // the registry answers
    event.preventDefault();
    if (!navigator.onLine) return checkOffline();
    // "Online" on a phone often means a network that reaches nothing: try the
    // registry, and answer from the bundle only when it cannot be reached.
    let response;
    try {
      response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
    } catch (error) {
      showNetwork(true);
      return checkOffline();
    }
    if (response.redirected) {
      location.assign(response.url); // the recorded inspection's page (or sign-in)
    } else {
      // Refused: nothing was recorded, so the form goes again to show why.
      sending = true;
      HTMLFormElement.prototype.submit.call(form);
    }
  });
  window.addEventListener("offline", () => showNetwork());
  window.addEventListener("online", async () => {
    showNetwork();
    await refreshBundle();
    await upload();
  });
  $("fetch-bundle").addEventListener("click", refreshBundle);
  // Signing out forgets the page kept for offline use (it names the officer and
  // their inspections); the queue stays, under its officer, for their next sign-in.
  document.querySelectorAll('form[action$="/sign-out"]').forEach((signOut) =>
    signOut.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await caches.delete(PAGE_CACHE);
      } catch (error) {
        // Nothing kept, or no cache here: sign out all the same.
      }
      HTMLFormElement.prototype.submit.call(signOut);
    })
  );
  $("upload-queue").addEventListener("click", upload);

  showKind();
  showNetwork();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register(root.dataset.sw, { scope: root.dataset.scope }).catch(() => {});
  }
  (async () => {
    if (navigator.onLine) await refreshBundle();
    else await showBundle();
    await showQueue();
    await upload();
    root.dataset.ready = "true";
  })();
})();
