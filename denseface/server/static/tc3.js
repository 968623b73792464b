// TC3-HMAC-SHA256 request signing (Tencent Cloud API 3.0), as a pure async function.
//
// Two interchangeable crypto back ends: WebCrypto (secure contexts: https, localhost,
// 127.0.0.1) and the bundled pure-JS fallback in sha256.js (everything else).

import { hmacSha256, sha256, toHex } from "./sha256.js";

const utf8 = new TextEncoder();

const webCryptoBackend = {
  name: "webcrypto",
  async sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  },
  async hmac(key, message) {
    const cryptoKey = await crypto.subtle.importKey(
      "raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, message));
  },
};

const fallbackBackend = {
  name: "fallback",
  async sha256(bytes) {
    return sha256(bytes);
  },
  async hmac(key, message) {
    return hmacSha256(key, message);
  },
};

/** True when WebCrypto can be used (it only exists in secure contexts). */
export function webCryptoAvailable() {
  return Boolean(globalThis.isSecureContext && globalThis.crypto && globalThis.crypto.subtle);
}

/** "webcrypto" | "fallback" | undefined (= pick automatically) -> back end object. */
function pickBackend(name) {
  if (name === "fallback") return fallbackBackend;
  if (name === "webcrypto") {
    if (!webCryptoAvailable()) throw new Error("WebCrypto is not available in this context");
    return webCryptoBackend;
  }
  return webCryptoAvailable() ? webCryptoBackend : fallbackBackend;
}

/** UTC calendar date (YYYY-MM-DD) of a Unix timestamp in seconds. */
export function utcDate(timestamp) {
  return new Date(timestamp * 1000).toISOString().slice(0, 10);
}

/**
 * Sign a request with TC3-HMAC-SHA256.
 *
 * @param {object} o
 * @param {string} o.secretId
 * @param {string} o.secretKey
 * @param {string} o.host          value of the Host header (the browser sends location.host)
 * @param {number} o.timestamp     Unix seconds, also sent as X-TC-Timestamp
 * @param {string|Uint8Array} o.payload  the exact request body
 * @param {string} [o.service="iai"]
 * @param {string} [o.method="POST"]
 * @param {string} [o.query=""]    canonical query string (raw, as sent; "" for POST)
 * @param {string} [o.contentType="application/json"]
 * @param {string} [o.backend]     "webcrypto" | "fallback"; default: best available
 * @returns {Promise<{authorization, signature, date, canonicalRequest, stringToSign, backend}>}
 */
export async function signTc3({
  secretId, secretKey, host, timestamp, payload,
  service = "iai", method = "POST", query = "", contentType = "application/json", backend,
}) {
  const impl = pickBackend(backend);
  const bytes = typeof payload === "string" ? utf8.encode(payload) : payload;
  const date = utcDate(timestamp);

  // Canonical headers: lower-cased, trimmed names and values, sorted by name.
  const headers = { "content-type": contentType, host };
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${String(headers[n]).trim().toLowerCase()}\n`).join("");
  const signedHeaders = names.join(";");

  const payloadHash = toHex(await impl.sha256(bytes));
  const canonicalRequest = [method, "/", query, canonicalHeaders, signedHeaders, payloadHash].join("\n");
  const scope = `${date}/${service}/tc3_request`;
  const stringToSign = [
    "TC3-HMAC-SHA256", String(timestamp), scope,
    toHex(await impl.sha256(utf8.encode(canonicalRequest))),
  ].join("\n");

  const kDate = await impl.hmac(utf8.encode("TC3" + secretKey), utf8.encode(date));
  const kService = await impl.hmac(kDate, utf8.encode(service));
  const kSigning = await impl.hmac(kService, utf8.encode("tc3_request"));
  const signature = toHex(await impl.hmac(kSigning, utf8.encode(stringToSign)));

  const authorization = `TC3-HMAC-SHA256 Credential=${secretId}/${scope}, `
    + `SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { authorization, signature, date, canonicalRequest, stringToSign, backend: impl.name };
}

/** Hex SHA-256 of a UTF-8 string or bytes with the chosen back end (test hook). */
export async function sha256Hex(data, backend) {
  const bytes = typeof data === "string" ? utf8.encode(data) : data;
  return toHex(await pickBackend(backend).sha256(bytes));
}

/**
 * The signed query string of a live stream (`GET /v1/stream`, a WebSocket): Tencent v1 with HmacSHA256.
 * Signature = base64 HMAC-SHA256(secretKey, "GET" + host + "/v1/stream?" + the other parameters sorted
 * by name, joined as k=v with &, values as sent, not URL-encoded); every value is then URL-encoded.
 */
export async function signStreamQuery({ secretId, secretKey, host, mode = 0, version = "2020-03-03",
  region = "ap-guangzhou", timestamp = Math.floor(Date.now() / 1000),
  nonce = 1 + Math.floor(Math.random() * 2147483646), backend } = {}) {
  const params = {
    Action: "AnalyzeDenseLandmarks", Mode: String(mode), Nonce: String(nonce),
    Region: region, SecretId: secretId, SignatureMethod: "HmacSHA256", Timestamp: String(timestamp), Version: version,
  };
  const names = Object.keys(params).sort();
  const plain = names.map((k) => `${k}=${params[k]}`).join("&");
  const mac = await pickBackend(backend).hmac(utf8.encode(secretKey), utf8.encode(`GET${host}/v1/stream?${plain}`));
  params.Signature = btoa(String.fromCharCode(...mac));
  return Object.entries(params).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
}
