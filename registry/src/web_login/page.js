// What the node's console and the registry's fleet page share: their calls
// to their own server with the session's page token, and building elements
// from text that is never parsed as HTML (plugins and nodes write some of it).
"use strict";

const $ = (id) => document.getElementById(id);

// Calls `prefix + path` with the page token the login gave this tab (kept
// in sessionStorage: per origin, so a page on another port cannot send it).
// A refused session calls `onLoggedOut` and throws.
async function pageCall(prefix, tokenKey, onLoggedOut, method, path, body) {
  const options = {
    method,
    headers: { "X-Outpost-Page": sessionStorage.getItem(tokenKey) || "" },
    credentials: "same-origin",
  };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(prefix + path, options);
  let answer = null;
  try {
    answer = await response.json();
  } catch (_) {
    answer = null;
  }
  if (response.status === 401 || response.status === 403) {
    onLoggedOut();
    throw new Error("log in again");
  }
  if (!response.ok) {
    const error = answer && (answer.error || (answer.errors && answer.errors[0]));
    const message = (error && (error.message || error)) || response.statusText;
    throw new Error(message);
  }
  return answer;
}

// Logs in at `url`; keeps the page token. Returns the error text, or null.
async function pageLogIn(url, tokenKey, password) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ password }),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch (_) {}
  if (!response.ok) {
    const error = answer && (answer.error || (answer.errors && answer.errors[0]));
    return (error && (error.message || error)) || "Wrong password.";
  }
  sessionStorage.setItem(tokenKey, answer.page_token);
  return null;
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
