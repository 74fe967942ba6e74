// Tokens from the HTTP endpoints, kept in memory only (never localStorage): a reload logs out.
// Refresh tokens rotate: each use returns a new pair, and the old refresh token is spent.

let tokens = null;

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let payload = {};
  try {
    payload = await response.json();
  } catch {
    payload = {};
  }
  return { ok: response.ok, status: response.status, payload };
}

function describe(result) {
  const { payload, status } = result;
  if (payload.errors) {
    return Object.values(payload.errors).flat().join(" ");
  }
  return payload.detail || `The server answered ${status}.`;
}

export class AuthError extends Error {}

async function obtain(path, username, password) {
  const result = await post(path, { username, password });
  if (!result.ok) throw new AuthError(describe(result));
  tokens = result.payload;
  return tokens;
}

export const login = (username, password) => obtain("/api/token/", username, password);
export const signup = (username, password) => obtain("/api/signup/", username, password);

function expiresAt(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).exp * 1000;
  } catch {
    return 0;
  }
}

export function claims() {
  if (!tokens) return null;
  try {
    const part = tokens.access.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

let refreshing = null;
let stale = false;

// The server refused the access token (close 4001): the next accessToken() refreshes, whatever
// the token's own expiry says (clocks differ; a revoked login fails the refresh with 401).
export function distrustAccessToken() {
  stale = true;
}

// A usable access token: the current one while it has a minute left, else a rotated pair.
// One refresh at a time, so a spent refresh token is never sent twice (that revokes the login).
export async function accessToken() {
  if (!tokens) throw new AuthError("Not logged in.");
  if (!stale && expiresAt(tokens.access) - Date.now() > 60_000) return tokens.access;
  if (!refreshing) {
    refreshing = post("/api/token/refresh/", { refresh: tokens.refresh })
      .then((result) => {
        if (result.ok) {
          tokens = result.payload;
          stale = false;
          return tokens.access;
        }
        if (result.status === 401) tokens = null;
        throw new AuthError(describe(result));
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

export async function logout() {
  const current = tokens;
  tokens = null;
  if (current) await post("/api/token/revoke/", { refresh: current.refresh }).catch(() => {});
}

export const loggedIn = () => tokens !== null;
