// A small WebDriver client for the real window: tauri-driver in front of WebKitWebDriver.
import { spawn } from "node:child_process";
import { createServer } from "node:net";

/** A loopback port nobody listens on now, chosen by the OS. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Requests that change nothing, so repeating one after a dropped answer is harmless. */
function safeToRepeat(method, path) {
  return method === "GET" || (method === "POST" && /\/elements?$|\/timeouts$/.test(path));
}

export class Window {
  /** Starts tauri-driver with `env` (the app inherits it) and opens `application`. */
  static async open(application, env) {
    // Both ports from the OS, so parallel runs and other servers cannot collide.
    const [port, nativePort] = [await freePort(), await freePort()];
    // A process group of its own: closing ends WebKitWebDriver and the app with it.
    const driver = spawn("tauri-driver", ["--port", String(port), "--native-port", String(nativePort)], {
      env,
      stdio: ["ignore", "ignore", "inherit"],
      detached: true,
    });
    const window = new Window(`http://127.0.0.1:${port}`, driver);
    await waitFor("tauri-driver", () => fetch(`${window.base}/status`).then((r) => r.ok), 15000);
    const created = await window.call("POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application } } },
    });
    window.session = created.sessionId;
    // Elements appear a frame or an IPC answer after the action that shows them.
    await window.call("POST", `/session/${window.session}/timeouts`, { implicit: 5000 });
    return window;
  }

  constructor(base, driver) {
    this.base = base;
    this.driver = driver;
  }

  /**
   * tauri-driver sometimes drops a request without answering. Only requests that change
   * nothing are retried: a repeated click, keystroke or new session would act twice.
   */
  async call(method, path, body) {
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await fetch(`${this.base}${path}`, {
          method,
          headers: { "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const json = await response.json();
        if (!response.ok) {
          throw Object.assign(new Error(`${method} ${path}: ${JSON.stringify(json.value)}`), { final: true });
        }
        return json.value;
      } catch (err) {
        if (err.final || attempt >= 5 || !safeToRepeat(method, path)) throw err;
        await new Promise((resolve) => setTimeout(resolve, 300 * attempt));
      }
    }
  }

  find(css) {
    return this.call("POST", `/session/${this.session}/element`, { using: "css selector", value: css }).then(
      (element) => Object.values(element)[0],
    );
  }

  async click(css) {
    return this.call("POST", `/session/${this.session}/element/${await this.find(css)}/click`, {});
  }

  async type(css, text) {
    return this.call("POST", `/session/${this.session}/element/${await this.find(css)}/value`, { text });
  }

  async text(css) {
    return this.call("GET", `/session/${this.session}/element/${await this.find(css)}/text`);
  }

  async enabled(css) {
    return this.call("GET", `/session/${this.session}/element/${await this.find(css)}/enabled`);
  }

  /** Runs `fn` (self-contained, no closure) in the page and returns what it returns. */
  execute(fn) {
    return this.call("POST", `/session/${this.session}/execute/sync`, { script: `return (${fn})()`, args: [] });
  }

  /** Evaluates a whole script in the page, e.g. a library's source. */
  inject(source) {
    return this.call("POST", `/session/${this.session}/execute/sync`, { script: `${source};return true`, args: [] });
  }

  /** Runs `body` as an async function in the page and returns what it resolves to. */
  executeAsync(body) {
    return this.call("POST", `/session/${this.session}/execute/async`, {
      script: `const done = arguments[arguments.length - 1]; (async () => { ${body} })().then(done, (e) => done({ error: String(e) }));`,
      args: [],
    });
  }

  async screenshot() {
    return Buffer.from(await this.call("GET", `/session/${this.session}/screenshot`), "base64");
  }

  async close() {
    if (this.session) await this.call("DELETE", `/session/${this.session}`).catch(() => {});
    try {
      process.kill(-this.driver.pid);
    } catch {
      // Already gone.
    }
  }
}

/** Polls `check` until it returns something truthy (errors count as not yet). */
export async function waitFor(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
