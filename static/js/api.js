// JSON calls to /api/chat/ with the CSRF token; errors become Error objects with the server's message.

export function createApi(root) {
  const base = root.dataset.api;
  const csrf = root.dataset.csrf;

  async function request(method, path, body) {
    const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") {
      options.headers["X-CSRFToken"] = csrf;
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    const response = await fetch(base + path, options);
    if (response.redirected && new URL(response.url).pathname === "/login/") {
      location.assign("/login/?next=" + encodeURIComponent(location.pathname)); // signed out meanwhile
      throw new Error("You are signed out.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message = (data && data.error) || `The server answered ${response.status}.`;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  return {
    get: (path) => request("GET", path),
    post: (path, body) => request("POST", path, body),
  };
}

// A random id for client_id; crypto.randomUUID needs a secure context, getRandomValues does not.
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
